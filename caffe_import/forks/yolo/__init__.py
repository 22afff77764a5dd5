"""YOLOv3/v4 Caffe ports (darknet2caffe): the catalogue entry; nearest Upsample and the
ports' darknet pooling rule in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "yolo", "YOLOv3/v4 Caffe ports (darknet2caffe)",
    "ChenYingpeng/darknet2caffe@0595e5c34574dfee49d3ecb67bb0540d903038ba README.md",
    ("Upsample", "Mish"),
    aliases=("yolov3", "yolov4", "darknet2caffe"), rank=80)
