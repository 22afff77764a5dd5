"""Which layers a net has in a given state: Caffe's ``NetState`` and ``NetStateRule``s.

``Net::FilterNet`` (``src/caffe/net.cpp``): the net state (phase, level, stages) and each
layer's include/exclude rules decide whether the layer is instantiated.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..errors import CaffeFormatError

PHASES = {"train": 0, "test": 1}
PHASE_NAMES = {0: "train", 1: "test"}


def phase_name(phase: str | int) -> str:
    """``"train"`` or ``"test"`` from a name (any case) or Caffe's enum (TRAIN=0, TEST=1)."""
    if isinstance(phase, str) and phase.lower() in PHASES:
        return phase.lower()
    if isinstance(phase, int) and not isinstance(phase, bool) and phase in PHASE_NAMES:
        return PHASE_NAMES[phase]
    raise ValueError(f"phase must be 'train' or 'test' (or caffe_pb2.TRAIN/TEST), got {phase!r}")


def state_meets_rule(state: Any, rule: Any) -> bool:
    """Caffe's ``StateMeetsRule``: every condition the rule sets holds for ``state``."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer: Any, state: Any) -> bool:
    """No rules: included. Exclude rules: out if any is met. Include rules: in if any is met."""
    if len(layer.include) and len(layer.exclude):
        raise CaffeFormatError("a layer may have include rules or exclude rules, not both",
                               layer=layer.name)
    if len(layer.exclude):
        return not any(state_meets_rule(state, r) for r in layer.exclude)
    if len(layer.include):
        return any(state_meets_rule(state, r) for r in layer.include)
    return True


def filter_net(net_param: Any, phase: str | int = "test", stages: Iterable[str] = (),
               level: int = 0) -> Any:
    """The NetParameter Caffe instantiates for this state (``Net(file, phase, level, stages)``:
    phase and level replace the file's ``state``; stages are added to the file's stages)."""
    out = type(net_param)()
    out.CopyFrom(net_param)
    out.state.phase = PHASES[phase_name(phase)]
    out.state.level = int(level)
    out.state.stage.extend(str(s) for s in stages)
    del out.layer[:]
    out.layer.extend(layer for layer in net_param.layer if layer_included(layer, out.state))
    return out
