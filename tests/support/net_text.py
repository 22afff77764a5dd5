"""Small prototxt nets for tests of the net's rules: an ``Input`` layer plus the layers given."""
from __future__ import annotations

INPUT = 'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ {dims} }} }} }}'


def net_text(*layers: str, shape=(2, 3, 4, 5), name="data") -> str:
    """Prototxt of an ``Input`` top ``name`` of ``shape`` followed by ``layers``."""
    dims = " ".join(f"dim: {d}" for d in shape)
    return "\n".join([INPUT.format(n=name, dims=dims), *layers])
