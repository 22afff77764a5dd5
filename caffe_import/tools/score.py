"""``caffe test``: score a model, logging Caffe's lines.

Caffe's ``test`` builds the net in the TEST phase (its data layers reading), copies the
weights by layer name, runs ``iterations`` forwards and logs, per forward, ``Batch i, name =
v`` for every element of every output, then ``Loss: L`` (the mean of the forwards' weighted
losses) and per output element ``name = mean`` with `` (* w = w*mean loss)`` for loss
outputs. Outputs come in Caffe's order: sorted by blob name (Caffe keeps them in a
``std::set``). Sums are float32, as Caffe's ``float`` sums.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Sequence

import numpy as np

from ..net import CaffeNet
from ..pycaffe import glog, mode
from .train import use_devices


def score(net_path: str | os.PathLike, weights: str | os.PathLike, iterations: int = 50, *,
          gpus: Sequence[int] = (), level: int = 0,
          stages: Sequence[str] = ()) -> "OrderedDict[str, np.ndarray]":
    """Caffe's ``caffe test -model M -weights W -iterations N``; returns each output's mean
    over the forwards (float32 arrays, one value per element)."""
    use_devices(list(gpus)[:1])
    net = CaffeNet(net_path, os.fspath(weights), phase="test", level=level,
                   stages=tuple(stages), data=True, device=mode.current_device())
    glog.info("caffe.cpp:281", f"Running for {iterations} iterations.")
    sums: OrderedDict[str, np.ndarray] = OrderedDict()
    loss = np.float32(0)
    for i in range(int(iterations)):
        blobs = net()
        loss += np.float32(float(net.total_loss(blobs)))
        for name in net.outputs:
            values = blobs[name].detach().cpu().numpy().astype(np.float32).reshape(-1)
            for v in values:
                glog.info("caffe.cpp:304", f"Batch {i}, {name} = {glog.num(v)}")
            sums[name] = sums[name] + values if name in sums else values.copy()
    n = np.float32(max(int(iterations), 1))
    glog.info("caffe.cpp:309", f"Loss: {glog.num(loss / n)}")
    means = OrderedDict((name, total / n) for name, total in sums.items())
    for name, mean in means.items():
        weight = np.float32(net.loss_weights.get(name, 0.0))
        for v in mean:
            note = f" (* {glog.num(weight)} = {glog.num(weight * v)} loss)" if weight else ""
            glog.info("caffe.cpp:321", f"{name} = {glog.num(v)}{note}")
    return means
