"""A tiny segmentation net (conv -> SoftmaxWithLoss) and a 3-class toy dataset for loop tests;
the same net fed by the release's Python data layer (training tests);
a tiny deploy net (conv -> ReLU -> score) with random weights for format and export tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcn_repro.data.base import SegmentationDataset

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""

DEPLOY = """
name: "tiny_deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "score" type: "Convolution" bottom: "conv" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
"""


def release_train_net(num_output: int) -> str:
    """A one-convolution TRAIN net fed, as the release's are, by a ``voc_layers`` Python data
    layer; ``num_output`` classes."""
    return f"""
name: "tiny"
layer {{ name: "data" type: "Python" top: "data" top: "label"
        python_param {{ module: "voc_layers" layer: "SBDDSegDataLayer" param_str: "{{}}" }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "score"
        param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
        convolution_param {{ num_output: {num_output} kernel_size: 3 pad: 1
                            weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param {{ ignore_label: 255 normalize: false }} }}
"""


def write_deploy(folder: Path) -> tuple[Path, Path]:
    """``DEPLOY`` as ``folder/net.prototxt`` and seeded random weights as
    ``folder/weights.caffemodel``."""
    from caffe_import.net import CaffeNet

    net_path, weights = folder / "net.prototxt", folder / "weights.caffemodel"
    net_path.write_text(DEPLOY)
    torch.manual_seed(0)
    CaffeNet(str(net_path)).save_weights(weights)
    return net_path, weights


class Toy(SegmentationDataset):
    name = "toy"
    num_classes = {None: 3}

    def __init__(self, n: int = 5) -> None:
        self.split = "all"
        self.ids = [f"toy_{i}" for i in range(n)]
        rng = np.random.default_rng(0)
        self.items = []
        for _ in range(n):
            img = torch.from_numpy(rng.standard_normal((3, 8, 8)).astype(np.float32))
            lab = torch.from_numpy(rng.integers(0, 3, (8, 8)))
            lab[0, :2] = 255
            self.items.append((img, lab))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]
