"""``caffe time``: per-layer forward and backward times, in Caffe's log lines.

As Caffe's ``time``: the net is built in the TRAIN phase by default (its data layers
reading), one untimed forward ("Initial loss") and backward, then ``iterations`` timed
passes, each layer's forward in order and each layer's backward in reverse (pycaffe's layer
list: Caffe's split layers included), and the averages per layer and per pass in ms. On a
GPU each layer's time is taken after ``torch.cuda.synchronize``.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Sequence

import torch

from ..pycaffe import glog, mode
from ..pycaffe.net import TEST, TRAIN
from .train import ReadingNet, use_devices


def _sync() -> None:
    if mode.current_device().type == "cuda":
        torch.cuda.synchronize()


def _ms(start: float) -> float:
    _sync()
    return (time.perf_counter() - start) * 1000.0


def time_net(net_path: str | os.PathLike, iterations: int = 50, *, phase: str = "train",
             gpus: Sequence[int] = (), level: int = 0,
             stages: Sequence[str] = ()) -> "OrderedDict[str, tuple[float, float]]":
    """Caffe's ``caffe time -model M -iterations N [-phase TEST]``; returns each layer's mean
    ``(forward ms, backward ms)``."""
    use_devices(list(gpus)[:1])
    net = ReadingNet(os.fspath(net_path), TRAIN if phase.lower() == "train" else TEST,
                     level=level, stages=list(stages))
    glog.info("caffe.cpp:351", "Performing Forward")
    net.forward()
    loss = sum(float(w * net.blobs[n].data.sum()) for n, w in net.blob_loss_weights.items() if w)
    glog.info("caffe.cpp:356", f"Initial loss: {glog.num(loss)}")
    glog.info("caffe.cpp:357", "Performing Backward")
    net.backward()
    names = list(net.top_names)  # every layer by name, Caffe's split layers included
    glog.info("caffe.cpp:365", "*** Benchmark begins ***")
    glog.info("caffe.cpp:366", f"Testing for {iterations} iterations.")
    forward = dict.fromkeys(names, 0.0)
    backward = dict.fromkeys(names, 0.0)
    total_start = time.perf_counter()
    for j in range(int(iterations)):
        iter_start = time.perf_counter()
        for name in names:
            start = time.perf_counter()
            net.forward(start=name, end=name)
            forward[name] += _ms(start)
        for name in reversed(names):
            start = time.perf_counter()
            net.backward(start=name, end=name)
            backward[name] += _ms(start)
        glog.info("caffe.cpp:394", f"Iteration: {j + 1} forward-backward time: "
                                   f"{glog.num(_ms(iter_start))} ms.")
    return _report(names, forward, backward, int(iterations), _ms(total_start))


def _report(names: list[str], forward: dict[str, float], backward: dict[str, float],
            iterations: int, total_ms: float) -> "OrderedDict[str, tuple[float, float]]":
    n = max(iterations, 1)
    glog.info("caffe.cpp:397", "Average time per layer: ")
    for name in names:
        glog.info("caffe.cpp:400", f"{name:>10}\tforward: {glog.num(forward[name] / n)} ms.")
        glog.info("caffe.cpp:403", f"{name:>10}\tbackward: {glog.num(backward[name] / n)} ms.")
    glog.info("caffe.cpp:408", f"Average Forward pass: {glog.num(sum(forward.values()) / n)} ms.")
    glog.info("caffe.cpp:410", f"Average Backward pass: {glog.num(sum(backward.values()) / n)} ms.")
    glog.info("caffe.cpp:412", f"Average Forward-Backward: {glog.num(total_ms / n)} ms.")
    glog.info("caffe.cpp:414", f"Total Time: {glog.num(total_ms)} ms.")
    glog.info("caffe.cpp:415", "*** Benchmark ends ***")
    return OrderedDict((name, (forward[name] / n, backward[name] / n)) for name in names)
