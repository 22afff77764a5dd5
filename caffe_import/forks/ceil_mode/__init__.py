"""Pooling's ``ceil_mode`` (BVLC/caffe pull request #3057; DenseNet and ResNeXt ports): the
catalogue entry. No layers of its own: BVLC's Pooling reads the field by name."""
from .. import Fork

FORK = Fork(
    "ceil-mode", "pooling ceil_mode (BVLC/caffe pull request #3057: DenseNet, ResNeXt ports)",
    "BVLC/caffe pull request #3057 src/caffe/proto/caffe.proto",
    (),
    aliases=("densenet", "resnext", "ceil_mode"), rank=110)
