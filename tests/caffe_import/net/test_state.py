"""Which layers a net has in a state (net.cpp's FilterNet and StateMeetsRule)."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support.net_text import net_text
from caffe_import.io import read_net
from caffe_import.layers import registry
from caffe_import.net import filter_net
from support import case_dir, case_meta


def _state(key: str):
    phase, stages, level = key.split("|")
    return phase.lower(), [s for s in stages.split(",") if s], int(level)


# --------------------------------------------------------------------- state rules
STATES = case_meta("net_state_rules")["states"]


@pytest.mark.parametrize("key", sorted(STATES))
def test_state_rules_keep_the_layers_caffe_instantiates(key):
    phase, stages, level = _state(key)
    net = read_net(case_dir("net_state_rules") / "net.prototxt")
    kept = [layer.name for layer in filter_net(net, phase, stages, level).layer]
    assert kept == STATES[key]


@pytest.mark.skipif(registry.get("Convolution") is None, reason="Convolution not registered yet")
@pytest.mark.parametrize("key", sorted(STATES))
def test_caffenet_builds_the_filtered_net_for_every_state(key):
    phase, stages, level = _state(key)
    net = CaffeNet(case_dir("net_state_rules") / "net.prototxt", phase=phase, stages=stages,
                   level=level, keep_blobs=True)
    assert net.layer_names == STATES[key]
    assert net.net_param.state.level == level
    out = net(data=torch.randn(1, 2, 3, 3))
    assert set(STATES[key]) <= set(out)


def test_include_and_exclude_together_is_an_error():
    text = net_text('layer { name: "r" type: "ReLU" bottom: "data" top: "r" '
                    'include { phase: TRAIN } exclude { stage: "x" } }')
    with pytest.raises(CaffeFormatError, match="'r'.*include rules or exclude rules"):
        CaffeNet(text)


def test_stages_add_to_the_files_own_state():
    text = 'state { stage: "deploy" }\n' + net_text(
        'layer { name: "d" type: "ReLU" bottom: "data" top: "d" include { stage: "deploy" '
        'stage: "x" } }')
    assert CaffeNet(text).layer_names == ["data"]
    assert CaffeNet(text, stages=["x"]).layer_names == ["data", "d"]
