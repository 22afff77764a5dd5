"""DeepLab v2 (deeplab-public-ver2): the catalogue entry; its Interp and MatWrite, which PSPNet
and DeepLab v1 share, in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "deeplab", "DeepLab v2 (deeplab-public-ver2)",
    "maweifei/deeplab-ver2@a225e95c3ba1d592ecf410eeaee87ca4088dbb3f src/caffe/proto/caffe.proto",
    ("Interp", "DenseCRF", "DomainTransform", "SegAccuracy", "MatRead", "MatWrite",
     "ImageSegData"),
    aliases=("deeplab-v2", "deeplabv2"), rank=30,
    param_types={"dense_crf_param": ("DenseCRF",)})
