"""Caffe's forks, one unit each: ``caffe_import/forks/<unit>/``.

A unit holds everything one fork adds, side by side:

* ``__init__.py``: its catalogue entry, ``FORK = Fork(...)`` (and nothing else: the schema
  catalogue imports every unit to discover them, so an entry imports no layer and no torch);
* ``delta.proto``: the fork's additions to BVLC's ``caffe.proto``, with the fork's own field
  numbers (``tools/fork_delta.py`` writes it from the fork's own schema);
* ``delta_pb.py``: that delta compiled (``tools/gen_proto.py``; never edited by hand);
* ``layers.py`` (where the fork has layers that run): its layers, each registered for the fork
  (``@register("BN", fork="segnet")``); ``caffe_import.layers.registry`` imports it on first use.

:mod:`caffe_import.proto.catalogue` finds the units; ``docs/forks.md`` ("Adding a fork") lists
the steps. This module holds only the record every entry is made of.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fork:
    """One shipped fork of Caffe: its name, where its schema came from, what it owns.

    ``rank`` places the fork in the default mixture (lower first: the first fork keeps a name
    two forks define differently, and a layer type two forks implement differently falls to the
    first when the layer's fields do not decide). ``param_types``: the ``LayerParameter``
    ``*_param`` fields the fork adds whose layer type is not the field name in CamelCase
    (``bn_param`` -> ``BN``), used to decide a wire number forks contest by the layer's type.
    ``v1_types``: V1 ``LayerType`` enum names of the fork whose string type is not the name in
    CamelCase (``DENSE_CRF`` -> ``DenseCRF``). ``uses``: forks whose layer classes this fork's
    Caffe also has (same sources): its layer types are looked up there after its own, before
    BVLC's.
    """

    name: str
    title: str
    source: str  # repository@commit path of the fork's caffe.proto
    layers: tuple[str, ...]  # layer types the fork adds (for hints and docs)
    aliases: tuple[str, ...] = ()
    rank: int = 1000
    param_types: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    v1_types: dict[str, str] = field(default_factory=dict, hash=False)
    uses: tuple[str, ...] = ()
