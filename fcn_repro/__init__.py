"""The FCN release (Long, Shelhamer, Darrell; CVPR 2015 / PAMI 2016) as code on caffe_import."""
__version__ = "0.1.0"
