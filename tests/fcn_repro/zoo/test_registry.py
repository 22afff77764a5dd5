"""The zoo's registry: every family registers beside its specs, names keep the release's
order whichever family was imported first, and a name registered twice is refused."""
from __future__ import annotations

import dataclasses

import pytest

from fcn_repro.zoo import registry


def test_names_follow_the_release_order_of_families():
    families = [registry.get(n).family for n in registry.names()]
    assert families == sorted(families, key=registry.FAMILIES.index)
    assert set(families) == set(registry.FAMILIES)
    assert registry.names("siftflow") == ["siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s"]


def test_a_name_registered_twice_is_refused():
    spec = registry.get("voc-fcn8s")
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register(dataclasses.replace(spec))
    assert registry.get("voc-fcn8s") is spec
