"""DeepLab v1 (deeplab-public; V1 ``layers`` nets with ``hole``): the catalogue entry; its
Padding in ``layers.py``, its Interp and MatWrite are the ``deeplab`` unit's."""
from .. import Fork

FORK = Fork(
    "deeplab-v1", "DeepLab v1 (deeplab-public; V1 'layers' nets with 'hole')",
    "TheLegendAli/DeepLab-Context@fb04e9e2fc2682490ad9f60533b9d6c4c0e0479c "
    "src/caffe/proto/caffe.proto",
    ("Interp", "ImageSegData", "SegAccuracy", "DenseCRF"),
    aliases=("deeplabv1",), rank=40, uses=("deeplab",),
    param_types={"dense_crf_param": ("DenseCRF",)},
    v1_types={"DENSE_CRF": "DenseCRF", "ONEHOT": "OneHot"})
