"""Small nets for the pycaffe tests (written to a temp folder by :func:`write`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

DEPLOY_NET = """
name: "tiny_deploy"
force_backward: true
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""

SOLVER = """
train_net: "train.prototxt"
base_lr: 0.05
momentum: 0.9
weight_decay: 0.001
lr_policy: "step"
stepsize: 2
gamma: 0.5
max_iter: 4
display: 0
snapshot_prefix: "snap/tiny"
"""


def write(folder: Path) -> Path:
    """train.prototxt, deploy.prototxt, solver.prototxt and random weights.caffemodel."""
    import torch

    from caffe_import.net import CaffeNet

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.prototxt").write_text(TRAIN_NET)
    (folder / "deploy.prototxt").write_text(DEPLOY_NET)
    (folder / "solver.prototxt").write_text(SOLVER)
    torch.manual_seed(0)
    net = CaffeNet(str(folder / "train.prototxt"), phase="train")
    net.save_weights(str(folder / "weights.caffemodel"))
    return folder


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    return rng.randn(2, 3, 8, 8).astype(np.float32), rng.randint(0, 5, 2).astype(np.float32)
