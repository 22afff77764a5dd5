"""SegNet (alexgkendall/caffe-segnet): the catalogue entry; BN and Upsample in ``layers.py``."""
from .. import Fork

FORK = Fork(
    "segnet", "SegNet (alexgkendall/caffe-segnet)",
    "alexgkendall/caffe-segnet@344c113bf1832886f1cbe9f33ffe28a3beeaf412 "
    "src/caffe/proto/caffe.proto",
    ("BN", "Upsample", "DenseImageData"),
    rank=50, param_types={"bn_param": ("BN",)})
