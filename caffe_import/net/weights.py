"""A built net's weights: copied in by layer name (``CopyTrainedLayersFrom``), shared with
another net (``ShareTrainedLayersWith``), read out as float32 arrays.

Caffe copies silently: a net layer with params that the file does not name keeps its
initial values (fillers, or zeros where the prototxt names none). Here that is a
:class:`MissingWeightsWarning` naming those layers, and an error (:class:`CaffeFormatError`)
when loading is strict: ``strict=True`` on ``CaffeNet``/``load_weights``, or every load inside
``with strict_weights():`` (what ``--strict`` on the command line does)."""
from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections import OrderedDict
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io import read_weights
from ..io.binary import copy_and_release
from ..io.shapes import match_blob_shape
from ..proto.schema import FORKS, schema_of
from .build import ParamSpecInfo
from .plan import Step

PathLike = str | os.PathLike

#: how many layer names a missing-weights message lists before "and N more"
_LISTED = 12
_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("strict_weights", default=False)


class MissingWeightsWarning(UserWarning):
    """Layers of the net with params found no weights in the file and keep their initial
    values (Caffe's ``CopyTrainedLayersFrom`` skips them without a word)."""


@contextlib.contextmanager
def strict_weights(strict: bool = True) -> Iterator[None]:
    """Inside, every weights load that is not given ``strict`` explicitly is strict: a net
    layer with params that the weights do not name is a :class:`CaffeFormatError` instead of
    a :class:`MissingWeightsWarning` (the command lines' ``--strict``)."""
    token = _STRICT.set(strict)
    try:
        yield
    finally:
        _STRICT.reset(token)


def weight_arrays(steps: Sequence[Step]) -> OrderedDict[str, list[np.ndarray]]:
    """Layer name -> param blobs as float32 arrays (for ``caffe_import.io.write_weights``)."""
    return OrderedDict((step.name, [b.detach().to("cpu", torch.float32).numpy().copy()
                                    for b in step.module.blobs])
                       for step in steps if step.module.blobs)


def forks_hint(net_param: Any, layer_type: str) -> str:
    """Where Caffe forks gave one layer type different layers (PSPNet's and SegNet's
    ``BN``) and no fork was named: which forks, and that naming one picks its layer."""
    if schema_of(net_param).fork is not None:
        return ""
    forks = [f.name for f in FORKS.values() if layer_type in f.layers]
    if len(forks) < 2:
        return ""
    return (f"; type '{layer_type}' is a different layer in the Caffe forks "
            f"{', '.join(forks[:-1])} and {forks[-1]}, and the fields this layer sets did "
            f"not say whose it is: its weights decide when given as the net is built "
            f"(CaffeNet(net, weights)), or name the net's fork (fork=NAME, --fork NAME)")


def load_weights(steps: Sequence[Step], first_index: Mapping[str, int], net_param: Any,
                 source: PathLike | Mapping[str, Sequence[Any]], strict: bool | None = None
                 ) -> list[str]:
    """Copy weights in by layer name, as Caffe's ``CopyTrainedLayersFrom``: layers of the
    file absent from the net are ignored, net layers absent from the file keep their
    values; the first net layer of a name is the target; blob counts must agree and
    shapes match (legacy 4-D shapes by ``match_blob_shape``).

    Returns the names of the net's layers with params that got no weights (a layer whose
    blobs all share another layer's, by ``ParamSpec.name``, got them when that one did).
    Caffe skips them silently; here they are a :class:`MissingWeightsWarning`, or with
    ``strict`` (default: inside :func:`strict_weights`) a :class:`CaffeFormatError` raised
    before any blob is copied."""
    path = None
    if isinstance(source, Mapping):
        mapping = source
    else:
        path = source
        mapping = read_weights(source)
    targets = [(first_index[name], arrays) for name, arrays in mapping.items()
               if name in first_index]
    missing = _without_weights(steps, [idx for idx, _ in targets])
    if missing:
        _report_missing(missing, path, _STRICT.get() if strict is None else strict)
    for idx, arrays in targets:
        _copy_layer(steps[idx], list(arrays), net_param, path)
    return missing


def _without_weights(steps: Sequence[Step], loaded: Sequence[int]) -> list[str]:
    """Names of the layers with params none of whose param storage a loaded layer holds."""
    filled = {id(steps[i].module.blob_source(j)[0])
              for i in loaded for j in range(len(steps[i].module.blobs))}
    missing: list[str] = []
    for step in steps:
        module = step.module
        sources = [id(module.blob_source(j)[0]) for j in range(len(module.blobs))]
        if sources and not all(s in filled for s in sources) and step.name not in missing:
            missing.append(step.name)
    return missing


def _report_missing(missing: Sequence[str], path: PathLike | None, strict: bool) -> None:
    listed = ", ".join(missing[:_LISTED]) + (
        f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else "")
    if strict:
        source = "in this file" if path is not None else "in the weights given"
        raise CaffeFormatError(f"{len(missing)} layer(s) of the net with params have no weights "
                               f"{source}: {listed} (weights of another net?)", path=path)
    source = f"in {os.fspath(path)}" if path is not None else "in the weights given"
    warnings.warn(f"{len(missing)} layer(s) with params got no weights {source} and keep their "
                  f"initial values (Caffe skips them silently): {listed}; strict=True "
                  f"(--strict) makes this an error", MissingWeightsWarning, stacklevel=4)


def _copy_layer(step: Step, arrays: list[Any], net_param: Any, path: PathLike | None) -> None:
    """One layer's blobs from the file: count and shapes checked, then copied."""
    targets = step.module.blobs
    if len(arrays) != len(targets):
        raise CaffeFormatError(f"the weights hold {len(arrays)} param blob(s) but the "
                               f"net's {step.type} layer has {len(targets)} (shapes "
                               f"{[tuple(t.shape) for t in targets]})"
                               + forks_hint(net_param, step.type),
                               layer=step.name, path=path)
    for j, (arr, target) in enumerate(zip(arrays, targets)):
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        arr = np.asarray(arr, dtype=np.float32)
        arr = match_blob_shape(arr, tuple(target.shape), layer=step.name, path=path, index=j)
        copy_blob(arr, target)


def share_trained_layers(steps: Sequence[Step], learnable: Sequence[ParamSpecInfo],
                         source_steps: Sequence[Step]) -> None:
    """Caffe's ``Net::ShareTrainedLayersWith``: each layer of the source net with params
    lends them to the first layer of ``steps`` with its name (layers the net lacks are
    skipped); counts and shapes must agree. The learnable-param records follow, so a solver
    built on this net updates the shared storage."""
    mine: dict[str, Step] = {}
    for step in steps:
        mine.setdefault(step.name, step)
    for step in source_steps:
        target = mine.get(step.name)
        source_blobs = step.module.blobs
        if target is None or not source_blobs:
            continue
        target_blobs = target.module.blobs
        if len(target_blobs) != len(source_blobs):
            raise CaffeFormatError(f"Incompatible number of blobs: {len(source_blobs)} "
                                   f"vs {len(target_blobs)}", layer=step.name)
        for j, src in enumerate(source_blobs):
            if tuple(target_blobs[j].shape) != tuple(src.shape):
                raise CaffeFormatError(f"Cannot share param {j} weights: shape "
                                       f"{tuple(src.shape)} vs {tuple(target_blobs[j].shape)}",
                                       layer=step.name)
            owner, view = step.module.blob_source(j)
            target.module.set_blob(j, owner, view)
            for info in learnable:
                if info.layer == step.name and info.index == j:
                    info.param = owner


def copy_blob(arr: np.ndarray, target: torch.Tensor) -> None:
    """Copy a weights array into a param blob, holding at most one extra chunk in memory.

    Arrays from ``read_weights`` are views of the mapped file: they are copied chunk by chunk
    and their pages released behind the copy (see ``io.binary.copy_and_release``), so a net
    built from a 540 MB caffemodel peaks at one copy of the weights, not two."""
    if target.device.type == "meta":  # a net of shapes only (checking a file): nothing to copy
        return
    with torch.no_grad():
        if target.device.type == "cpu" and target.dtype == torch.float32 and target.is_contiguous():
            copy_and_release(np.asarray(arr, dtype=np.float32), target.detach().numpy())
        else:
            target.copy_(torch.from_numpy(np.array(arr, dtype=np.float32, order="C")))
