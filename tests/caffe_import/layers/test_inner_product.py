"""InnerProduct against real Caffe (layers_misc): layouts, axis, the input size fixed at setup."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "InnerProduct"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_inner_product_layouts_and_fixed_input_size():
    ip = make('name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param '
              '{ num_output: 3 transpose: true axis: 2 weight_filler { type: "gaussian" } }',
              [(2, 4, 5, 6)])
    assert ip.blob_shapes() == [(30, 3), (3,)]
    x = torch.randn(2, 4, 5, 6)
    (y,) = ip(x)
    torch.testing.assert_close(y, x.reshape(2, 4, 30) @ ip.blobs[0] + ip.blobs[1])
    with pytest.raises(CaffeFormatError, match="built for 30"):
        ip.top_shapes([(2, 4, 5, 7)])
