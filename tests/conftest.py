"""pytest's start-up hook for the whole tree (shared helpers are in ``support``, not here).

It sets the OpenMP defaults the commands set (:mod:`caffe_import.threads`: passive waiting,
the usable cores) before any test module loads torch: a test run beside other busy processes
otherwise slows several-fold (docs/performance.md).
"""
from caffe_import.threads import configure_threads

configure_threads()

# fixtures hold other projects' test files (BVLC's pycaffe unittest files, run by
# tests/caffe_import/pycaffe/test_bvlc_tests.py under `caffe-import run`), never collected here
collect_ignore = ["fixtures"]
