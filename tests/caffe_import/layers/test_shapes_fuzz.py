"""Random geometries for the numerics layers: building either succeeds - and then ``top_shapes``
(what the net plans with) equals the shapes ``forward`` really produces - or raises
``CaffeFormatError`` naming the layer. Never another exception."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import make

small = st.integers(1, 6)
shape4 = st.tuples(st.integers(1, 2), st.integers(1, 4), small, small)


@st.composite
def conv_case(draw):
    kind = draw(st.sampled_from(["Convolution", "Deconvolution"]))
    shape = draw(shape4)
    fields = {
        "num_output": draw(st.integers(0, 4)), "kernel_size": draw(st.integers(0, 4)),
        "stride": draw(st.integers(1, 3)), "pad": draw(st.integers(0, 3)),
        "dilation": draw(st.integers(1, 2)), "group": draw(st.integers(1, 2)),
    }
    text = " ".join(f"{k}: {v}" for k, v in fields.items())
    return f'type: "{kind}" convolution_param {{ {text} }}', [shape]


@st.composite
def pool_case(draw):
    shape = draw(shape4)
    pool = draw(st.sampled_from(["MAX", "AVE", "STOCHASTIC"]))
    k, s, p = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(0, 4))
    mode = draw(st.sampled_from(["CEIL", "FLOOR"]))
    glob = draw(st.booleans())
    geom = "global_pooling: true" if glob else f"kernel_size: {k} stride: {s} pad: {p}"
    return f'type: "Pooling" pooling_param {{ pool: {pool} {geom} round_mode: {mode} }}', [shape]


@st.composite
def axis_case(draw):
    shape = draw(shape4)
    axis = draw(st.integers(-5, 4))
    kind = draw(st.sampled_from(["Softmax", "InnerProduct", "Reduction", "Scale", "Bias",
                                 "ArgMax", "Crop"]))
    if kind == "Softmax":
        return f'type: "Softmax" softmax_param {{ axis: {axis} }}', [shape]
    if kind == "InnerProduct":
        return (f'type: "InnerProduct" inner_product_param {{ num_output: 3 axis: {axis} }}',
                [shape])
    if kind == "Reduction":
        return f'type: "Reduction" reduction_param {{ operation: MEAN axis: {axis} }}', [shape]
    if kind in ("Scale", "Bias"):
        n = draw(st.integers(-2, 3))
        field = "scale_param" if kind == "Scale" else "bias_param"
        return f'type: "{kind}" {field} {{ axis: {axis} num_axes: {n} }}', [shape]
    if kind == "ArgMax":
        k = draw(st.integers(1, 5))
        return f'type: "ArgMax" argmax_param {{ axis: {axis} top_k: {k} out_max_val: true }}', \
            [shape]
    ref = draw(shape4)
    off = draw(st.integers(0, 3))
    return f'type: "Crop" bottom: "r" crop_param {{ axis: {axis} offset: {off} }}', [shape, ref]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(conv_case(), pool_case(), axis_case()))
def test_build_then_forward_or_a_named_error(case):
    text, shapes = case
    try:
        layer = make(f'name: "fz" bottom: "a" top: "y" {text}', shapes)
        planned = layer.top_shapes(shapes)
    except CaffeFormatError as err:
        assert "layer 'fz'" in str(err)
        return
    torch.manual_seed(0)
    with torch.no_grad():
        tops = layer(*[torch.rand(s) for s in shapes])
    assert [tuple(t.shape) for t in tops] == [tuple(s) for s in planned]


@pytest.mark.parametrize("text, shapes", [
    ('type: "LRN" lrn_param { local_size: 4 }', [(1, 2, 3, 3)]),
    ('type: "LRN"', [(2, 3)]),
    ('type: "MVN"', [(1, 1, 1, 1, 1)]),
    ('type: "Embed" embed_param { num_output: 0 input_dim: 2 }', [(2,)]),
    ('type: "Softmax" softmax_param { axis: 3 }', [(2, 3)]),
    ('type: "Accuracy" bottom: "t" accuracy_param { top_k: 5 }', [(2, 3), (2,)]),
    ('type: "EuclideanLoss" bottom: "b"', [(2, 3), (2, 4)]),
    ('type: "SigmoidCrossEntropyLoss" bottom: "b"', [(2, 3), (3, 3)]),
])
def test_invalid_layers_raise_named_errors(text, shapes):
    with pytest.raises(CaffeFormatError, match="layer 'bad'"):
        make(f'name: "bad" bottom: "a" top: "y" {text}', shapes)
