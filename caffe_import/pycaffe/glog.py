"""Caffe's log lines as pycaffe shows them: glog INFO lines on stderr.

pycaffe never calls ``InitGoogleLogging``, so glog writes every message to stderr, each led by
glog's prefix (``I1130 04:35:37.123456 12345 solver.cpp:239] ``: severity, month and day,
time, thread id, Caffe's source file and line). ``GLOG_minloglevel`` (read at each message)
drops messages below that severity: INFO is 0, so any value >= 1 silences these lines, as
``GLOG_minloglevel=2 python script.py`` does under Caffe. The file:line are BVLC master's.
"""
from __future__ import annotations

import datetime
import os
import sys
import threading


def _min_level() -> int:
    try:
        return int(os.environ.get("GLOG_minloglevel", "0"))
    except ValueError:  # glog reads a malformed value as 0
        return 0


def info(where: str, message: str) -> None:
    """One INFO line from Caffe's ``where`` (``file.cpp:line``), unless silenced."""
    if _min_level() >= 1:
        return
    now = datetime.datetime.now()
    prefix = (f"I{now:%m%d %H:%M:%S}.{now.microsecond:06d} "
              f"{threading.get_native_id():>5} {where}] ")
    sys.stderr.write(prefix + message + "\n")
    sys.stderr.flush()


def num(value: float) -> str:
    """A number as C++'s ``ostream << float`` prints it (6 significant digits, %g)."""
    return f"{float(value):g}"
