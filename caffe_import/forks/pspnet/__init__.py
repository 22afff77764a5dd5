"""PSPNet (hszhao/PSPNet, DeepLab v2's schema plus BN): the catalogue entry; its BN in
``layers.py``, its DeepLab v2 layers (Interp, MatWrite) are the ``deeplab`` unit's."""
from .. import Fork

FORK = Fork(
    "pspnet", "PSPNet (hszhao/PSPNet; DeepLab v2's schema)",
    "hszhao/PSPNet@798bdc907c8630e8c3997ebfdd0d7cae0c5ab03b src/caffe/proto/caffe.proto",
    ("BN", "Interp", "DenseCRF", "DomainTransform", "SegAccuracy", "MatRead", "MatWrite",
     "BiasChannel", "AdaptiveBiasChannel", "UniqueLabel"),
    aliases=("psp",), rank=20, uses=("deeplab",),
    param_types={"bn_param": ("BN",), "dense_crf_param": ("DenseCRF",)})
