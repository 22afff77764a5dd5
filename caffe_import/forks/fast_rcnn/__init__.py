"""Fast/Faster R-CNN (rbgirshick/caffe-fast-rcnn): the catalogue entry; ROIPooling,
SmoothL1Loss and py-faster-rcnn's opt-in proposal layer in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "fast-rcnn", "Fast/Faster R-CNN (rbgirshick/caffe-fast-rcnn, branch faster-rcnn)",
    "rbgirshick/caffe-fast-rcnn@4115385deb3b907fcd428ac0ab53b694d741a3c4 "
    "src/caffe/proto/caffe.proto",
    ("ROIPooling", "SmoothL1Loss"),
    aliases=("faster-rcnn", "py-faster-rcnn"), rank=70,
    param_types={"roi_pooling_param": ("ROIPooling",),
                 "smooth_l1_loss_param": ("SmoothL1Loss",)})
