"""A built net's weights: copied in by layer name (``CopyTrainedLayersFrom``), shared with
another net (``ShareTrainedLayersWith``), read out as float32 arrays."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io import read_weights
from ..io.binary import copy_and_release
from ..io.shapes import match_blob_shape
from ..proto.schema import FORKS, schema_of
from .build import ParamSpecInfo, Step

PathLike = str | os.PathLike


def weight_arrays(steps: Sequence[Step]) -> OrderedDict[str, list[np.ndarray]]:
    """Layer name -> param blobs as float32 arrays (for ``caffe_import.io.write_weights``)."""
    return OrderedDict((step.name, [b.detach().to("cpu", torch.float32).numpy().copy()
                                    for b in step.module.blobs])
                       for step in steps if step.module.blobs)


def forks_hint(net_param: Any, layer_type: str) -> str:
    """Where Caffe forks gave one layer type different layers (PSPNet's and SegNet's
    ``BN``) and no fork was named: which forks, and that naming one picks its layer."""
    if schema_of(net_param).fork is not None:
        return ""
    forks = [f.name for f in FORKS.values() if layer_type in f.layers]
    if len(forks) < 2:
        return ""
    return (f"; type '{layer_type}' is a different layer in the Caffe forks "
            f"{', '.join(forks[:-1])} and {forks[-1]}, and the fields this layer sets did "
            f"not say whose it is: its weights decide when given as the net is built "
            f"(CaffeNet(net, weights)), or name the net's fork (fork=NAME, --fork NAME)")


def load_weights(steps: Sequence[Step], first_index: Mapping[str, int], net_param: Any,
                 source: PathLike | Mapping[str, Sequence[Any]]) -> None:
    """Copy weights in by layer name, as Caffe's ``CopyTrainedLayersFrom``: layers of the
    file absent from the net are ignored, net layers absent from the file keep their
    values; the first net layer of a name is the target; blob counts must agree and
    shapes match (legacy 4-D shapes by ``match_blob_shape``)."""
    path = None
    if isinstance(source, Mapping):
        mapping = source
    else:
        path = source
        mapping = read_weights(source)
    for lname, arrays in mapping.items():
        idx = first_index.get(lname)
        if idx is None:
            continue
        step = steps[idx]
        targets = step.module.blobs
        arrays = list(arrays)
        if len(arrays) != len(targets):
            raise CaffeFormatError(f"the weights hold {len(arrays)} param blob(s) but the "
                                   f"net's {step.type} layer has {len(targets)} (shapes "
                                   f"{[tuple(t.shape) for t in targets]})"
                                   + forks_hint(net_param, step.type),
                                   layer=lname, path=path)
        for j, (arr, target) in enumerate(zip(arrays, targets)):
            if isinstance(arr, torch.Tensor):
                arr = arr.detach().cpu().numpy()
            arr = np.asarray(arr, dtype=np.float32)
            arr = match_blob_shape(arr, tuple(target.shape), layer=lname, path=path, index=j)
            copy_blob(arr, target)


def share_trained_layers(steps: Sequence[Step], learnable: Sequence[ParamSpecInfo],
                         source_steps: Sequence[Step]) -> None:
    """Caffe's ``Net::ShareTrainedLayersWith``: each layer of the source net with params
    lends them to the first layer of ``steps`` with its name (layers the net lacks are
    skipped); counts and shapes must agree. The learnable-param records follow, so a solver
    built on this net updates the shared storage."""
    mine: dict[str, Step] = {}
    for step in steps:
        mine.setdefault(step.name, step)
    for step in source_steps:
        target = mine.get(step.name)
        source_blobs = step.module.blobs
        if target is None or not source_blobs:
            continue
        target_blobs = target.module.blobs
        if len(target_blobs) != len(source_blobs):
            raise CaffeFormatError(f"Incompatible number of blobs: {len(source_blobs)} "
                                   f"vs {len(target_blobs)}", layer=step.name)
        for j, src in enumerate(source_blobs):
            if tuple(target_blobs[j].shape) != tuple(src.shape):
                raise CaffeFormatError(f"Cannot share param {j} weights: shape "
                                       f"{tuple(src.shape)} vs {tuple(target_blobs[j].shape)}",
                                       layer=step.name)
            owner, view = step.module.blob_source(j)
            target.module.set_blob(j, owner, view)
            for info in learnable:
                if info.layer == step.name and info.index == j:
                    info.param = owner


def copy_blob(arr: np.ndarray, target: torch.Tensor) -> None:
    """Copy a weights array into a param blob, holding at most one extra chunk in memory.

    Arrays from ``read_weights`` are views of the mapped file: they are copied chunk by chunk
    and their pages released behind the copy (see ``io.binary.copy_and_release``), so a net
    built from a 540 MB caffemodel peaks at one copy of the weights, not two."""
    with torch.no_grad():
        if target.device.type == "cpu" and target.dtype == torch.float32 and target.is_contiguous():
            copy_and_release(np.asarray(arr, dtype=np.float32), target.detach().numpy())
        else:
            target.copy_(torch.from_numpy(np.array(arr, dtype=np.float32, order="C")))
