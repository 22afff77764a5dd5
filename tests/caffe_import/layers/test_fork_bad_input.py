"""Bad input to the fork layers: wrong bottom/top counts and shapes that cannot go together
raise ``CaffeFormatError`` naming the layer and what was expected, when the layer is built
(the shapes are known then), never a bare torch/Python error at forward or a huge allocation."""
from __future__ import annotations

import pytest

from caffe_import import CaffeNet
from caffe_import.errors import CaffeFormatError
from support.forks import build

DET = ('type: "DetectionOutput" bottom: "l" bottom: "c" bottom: "p" top: "y" '
       'detection_output_param { num_classes: 3 }')
PRIOR = 'type: "PriorBox" bottom: "f" bottom: "i" top: "y" prior_box_param { %s }'
INTERP = 'type: "Interp" bottom: "x" top: "y" interp_param { %s }'
SEG_UP = 'type: "Upsample" bottom: "x" bottom: "m" top: "y" upsample_param { scale: 2 }'
ROI = ('type: "ROIPooling" bottom: "x" bottom: "r" top: "y" '
       'roi_pooling_param { pooled_h: 2 pooled_w: 2 spatial_scale: 0.5 }')
SL1 = 'type: "SmoothL1Loss" bottom: "a" bottom: "b" top: "y"'

# (fork, layer text, bottom shapes, words the message must contain)
CASES = [
    # SSD
    ("ssd", DET, [(1, 16), (1, 12), (1, 2, 17)], "num_priors * 4"),
    ("ssd", DET, [(1, 16), (1, 12), (1, 1, 16)], "(1, 2, num_priors * 4)"),
    ("ssd", DET, [(1, 20), (1, 12), (1, 2, 16)], "location predictions"),
    ("ssd", DET, [(1, 16), (2, 12), (1, 2, 16)], "confidences"),
    ("ssd", DET, [(1, 16), (1, 15), (1, 2, 16)], "confidences"),
    ("ssd", DET.replace('bottom: "p" ', ""), [(1, 16), (1, 12)], "3 or 4 bottom"),
    ("ssd", PRIOR % "max_size: 3", [(1, 2, 3, 3), (1, 3, 30, 30)], "needs min_size"),
    ("ssd", PRIOR % "min_size: 3 aspect_ratio: 0", [(1, 2, 3, 3), (1, 3, 30, 30)],
     "aspect_ratio must be positive"),
    ("ssd", PRIOR % "min_size: 3 aspect_ratio: -2", [(1, 2, 3, 3), (1, 3, 30, 30)],
     "aspect_ratio must be positive"),
    ("ssd", PRIOR % "min_size: 3", [(1, 2, 3), (1, 3, 30, 30)], "4-D feature map"),
    ("ssd", PRIOR % "min_size: 3", [(1, 2, 3, 3), (1, 30, 30)], "4-D image"),
    ("ssd", PRIOR % "min_size: 3 max_size: 2", [(1, 2, 3, 3), (1, 3, 30, 30)],
     "greater than min_size"),
    ("ssd", 'type: "Permute" bottom: "x" top: "y" permute_param { order: 0 order: 0 }',
     [(1, 2, 3, 4)], "given twice"),
    ("ssd", 'type: "Permute" bottom: "x" top: "y" permute_param { order: 4 }',
     [(1, 2, 3, 4)], "not an axis"),
    ("ssd", 'type: "Normalize" bottom: "x" top: "y"', [(4,)], "at least 2 axes"),
    # PSPNet / DeepLab
    ("pspnet", INTERP % "height: 0 width: 5", [(1, 2, 3, 4)], "empty"),
    ("pspnet", INTERP % "shrink_factor: 0", [(1, 2, 3, 4)], ">= 1"),
    ("pspnet", INTERP % "zoom_factor: 2 pad_beg: -3", [(1, 2, 3, 4)], "empty"),
    ("pspnet", INTERP % "zoom_factor: 2", [(1, 2, 3)], "4-D"),
    ("pspnet", 'type: "BN" bottom: "x" top: "y" top: "z"', [(1, 2, 3, 4)], "1 top"),
    ("deeplab-v1", 'type: "Padding" bottom: "x" top: "y" padding_param { pad_beg: -3 '
     'pad_end: -3 }', [(1, 8, 4, 4)], "leaves nothing"),
    # SegNet
    ("segnet", 'type: "BN" bottom: "x" top: "y" top: "m" top: "v" top: "w"', [(1, 2, 3, 4)],
     "1, 2 or 3 top(s)"),
    ("segnet", SEG_UP, [(1, 2, 3, 4), (1, 2, 3, 5)], "mask"),
    ("segnet", SEG_UP, [(1, 2, 3), (1, 2, 3)], "4-D"),
    # Fast R-CNN
    ("fast-rcnn", ROI, [(1, 2, 3, 4), (3, 4)], "rois (R, 5)"),
    ("fast-rcnn", ROI, [(1, 2, 3, 4), (5,)], "rois (R, 5)"),
    ("fast-rcnn", ROI, [(1, 2, 3), (3, 5)], "(N, C, H, W)"),
    ("fast-rcnn", ROI.replace('bottom: "r" ', ""), [(1, 2, 3, 4)], "2 bottom(s) (features, rois)"),
    ("fast-rcnn", SL1, [(2, 4), (3, 4)], "same shape"),
    ("fast-rcnn", SL1, [(2, 4), (2, 5)], "same shape"),
    # YOLO, ShuffleNet, SENet, MobileNet
    ("yolov2", 'type: "Reorg" bottom: "x" top: "y" reorg_param { stride: 2 }', [(1, 8, 3, 4)],
     "divisible by 2"),
    ("yolov2", 'type: "Reorg" bottom: "x" top: "y" reorg_param { stride: 2 }', [(1, 6, 4, 4)],
     "C by 4"),
    (None, 'type: "Upsample" bottom: "x" top: "y" upsample_param { scale: 0 }', [(1, 8, 4, 4)],
     ">= 1"),
    (None, 'type: "ShuffleChannel" bottom: "x" top: "y" shuffle_channel_param { group: 3 }',
     [(1, 8, 4, 4)], "must divide"),
    (None, 'type: "Axpy" bottom: "a" bottom: "x" bottom: "b" top: "y"',
     [(1, 7, 1, 1), (1, 8, 4, 4), (1, 8, 4, 4)], "(N, C, 1, 1)"),
    (None, 'type: "Axpy" bottom: "a" bottom: "x" top: "y"', [(1, 8, 1, 1), (1, 8, 4, 4)],
     "3 bottom(s) (a, x, y)"),
    (None, 'type: "ReLU6" bottom: "x" bottom: "z" top: "y"', [(1, 8), (1, 8)], "1 bottom(s) and 1 top(s), got 2 and 1"),
]


@pytest.mark.parametrize("fork,text,shapes,expected", CASES,
                         ids=[f"{c[1].split()[1]}-{i}" for i, c in enumerate(CASES)])
def test_bad_fork_layer_input_is_a_named_error_at_build(fork, text, shapes, expected):
    with pytest.raises(CaffeFormatError) as err:
        build(f'name: "bad" {text}', shapes, fork=fork).top_shapes(shapes)
    assert "layer 'bad'" in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("fork,text", [
    ("yolov2", 'type: "Reorg" bottom: "x" top: "y" reorg_param { stride: 2 }'),
    (None, 'type: "Upsample" bottom: "x" top: "y" upsample_param { scale: 2 }'),
])
def test_a_layer_asked_for_other_bottom_shapes_later_says_what_it_needs(fork, text):
    """``top_shapes`` is asked again when inputs are reshaped (pycaffe's ``Net.reshape``)."""
    layer = build(f'name: "late" {text}', [(1, 8, 4, 4)], fork=fork)
    with pytest.raises(CaffeFormatError, match="layer 'late'.*4-D"):
        layer.top_shapes([(1, 8, 4)])


@pytest.mark.parametrize("fork,layer", [
    ("pspnet", INTERP % "height: 100000 width: 100000"),
    ("segnet", 'type: "Upsample" bottom: "x" bottom: "x" top: "y" '
               'upsample_param { scale: 60000 }'),
    ("deeplab-v1", 'type: "Padding" bottom: "x" top: "y" padding_param { pad_beg: 50000 '
                   'pad_end: 50000 }'),
])
def test_a_top_caffe_could_not_allocate_is_refused_when_the_net_is_built(fork, layer):
    """Caffe's Blob refuses more than INT_MAX values; the net does too, before allocating."""
    text = ('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 4 }\n'
            f'layer {{ name: "big" {layer} }}')
    with pytest.raises(CaffeFormatError, match="layer 'big'.*INT_MAX"):
        CaffeNet(text, fork=fork)
