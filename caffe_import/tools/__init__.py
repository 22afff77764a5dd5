"""Caffe's command-line tools as library functions (``caffe train``, ``caffe test``,
``caffe time``), behind ``caffe-import train``, ``test`` and ``time``.

They run Caffe's own files unchanged: a solver prototxt whose nets read their data
(``HDF5Data``, and the data layers that read), file names relative to the working directory
as Caffe opens them, Caffe's snapshots (``<prefix>_iter_<N>.caffemodel`` + binary
``.solverstate``), and Caffe's log lines on stderr in glog's format
(``caffe_import.pycaffe.glog``), so scripts that parse Caffe's logs (``parse_log.py``) read
ours. ``train`` drives pycaffe's solver (``caffe_import.pycaffe.solver``, over the library
solver ``caffe_import.solver``) with nets built with ``data=True``.
"""
from .score import score
from .timing import time_net
from .train import train

__all__ = ["score", "time_net", "train"]
