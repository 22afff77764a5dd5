"""SSD (weiliu89/caffe, branch ssd): the catalogue entry; layers in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "ssd", "SSD (weiliu89/caffe, branch ssd)",
    "weiliu89/caffe@4817bf8b4200b35ada8ed0dc378dceaf38c539e4 src/caffe/proto/caffe.proto",
    ("Normalize", "Permute", "PriorBox", "DetectionOutput", "MultiBoxLoss", "AnnotatedData",
     "DetectionEvaluate", "VideoData"),
    aliases=("weiliu89",), rank=10,
    param_types={"norm_param": ("Normalize",), "multibox_loss_param": ("MultiBoxLoss",)})
