"""YOLOv2 Caffe port (gklz1982/caffe-yolov2): the catalogue entry; Reorg in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "yolov2", "YOLOv2 Caffe port (gklz1982/caffe-yolov2)",
    "gklz1982/caffe-yolov2@ebb27029db4ddc0d40e520634633b0fa9cdcc10d src/caffe/proto/caffe.proto",
    ("Reorg", "RegionLoss", "DetectionOutput", "EvalDetection"),
    rank=90)
