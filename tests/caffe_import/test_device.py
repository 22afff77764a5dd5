"""One device resolver: "auto", device names, and what this machine lacks said plainly."""
from __future__ import annotations

import argparse

import pytest
import torch

from caffe_import.cli.options import device as device_option
from caffe_import.device import DeviceUnavailable, resolve_device
from caffe_import.errors import UsageError


def test_names_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("meta").type == "meta"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device(None) == resolve_device("auto")


def test_a_missing_or_unknown_device_is_a_usage_error():
    with pytest.raises(DeviceUnavailable, match="not a torch device"):
        resolve_device("tpu9")
    assert issubclass(DeviceUnavailable, UsageError)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        n = torch.cuda.device_count()
        with pytest.raises(DeviceUnavailable, match="CUDA device"):
            resolve_device(f"cuda:{n}")


def test_the_cli_option_uses_the_resolver():
    assert device_option("cpu") == "cpu"
    with pytest.raises(argparse.ArgumentTypeError, match="not a torch device"):
        device_option("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available"):
            device_option("cuda:0")
