"""The forks' emitters, one module per fork unit under ``caffe_import/forks``."""
