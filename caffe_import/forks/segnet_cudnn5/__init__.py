"""SegNet for cuDNN 5 (TimoSaemann/caffe-segnet-cudnn5): the catalogue entry; the same layer
sources as SegNet's (the ``segnet`` unit's layers), with its own field numbers."""
from .. import Fork

FORK = Fork(
    "segnet-cudnn5", "SegNet for cuDNN 5 (TimoSaemann/caffe-segnet-cudnn5)",
    "TimoSaemann/caffe-segnet-cudnn5@abcf30dca449245e101bf4ced519f716177f0885 "
    "src/caffe/proto/caffe.proto",
    ("BN", "Upsample", "DenseImageData"),
    rank=60, uses=("segnet",), param_types={"bn_param": ("BN",)})
