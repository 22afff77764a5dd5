"""Every real-Caffe case through CaffeNet: each stored blob (and, for format_* cases, each param
as Caffe loaded it; for the TRAIN case, the loss, every param gradient and every blob gradient)
at the tolerance the case's meta.json gives."""
from __future__ import annotations

from urllib.parse import unquote

import h5py
import numpy as np
import pytest
import torch

from caffe_import.net import CaffeNet
from support import FORWARD_CASES, TRAIN_CASES, case_dir, case_meta
from support.compare import within


def _group(f: h5py.File, name: str) -> dict[str, np.ndarray]:
    return {unquote(k): f[name][k][()] for k in f[name]} if name in f else {}


def _params(f: h5py.File, name: str) -> dict[str, list[np.ndarray]]:
    if name not in f:
        return {}
    return {unquote(layer): [g[str(i)][()] for i in range(len(g))] for layer, g in f[name].items()}


def _check_all(what: str, pairs, tol: dict) -> list[str]:
    """Names (with their errors) of the entries outside the tolerance."""
    bad = []
    for name, ours, ref in pairs:
        if ours is None:
            bad.append(f"{what} {name}: missing")
            continue
        problem = within(ours, ref, tol)
        if problem:
            bad.append(f"{what} {name}: {problem}")
    return bad


def _build(case: str, **kwargs) -> CaffeNet:
    meta = case_meta(case)
    folder = case_dir(case)
    kwargs.setdefault("keep_blobs", True)  # every blob is compared
    return CaffeNet(folder / meta.get("net", "net.prototxt"), folder / meta["weights"],
                    phase=meta.get("phase", "TEST").lower(), **kwargs)


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_forward_matches_caffe_on_every_blob(case):
    meta = case_meta(case)
    tol = meta["tolerance"]
    with h5py.File(case_dir(case) / meta.get("reference", "reference.h5"), "r") as f:
        inputs, blobs, params = _group(f, "inputs"), _group(f, "blobs"), _params(f, "params")
    torch.manual_seed(0)
    net = _build(case)
    with torch.no_grad():
        out = net(**inputs)
    bad = _check_all("blob", [(n, out.get(n), ref) for n, ref in blobs.items()], tol)
    ours_params = net.params
    for layer, refs in params.items():
        mine = ours_params.get(layer)
        if mine is None or len(mine) != len(refs):
            bad.append(f"params {layer}: {0 if mine is None else len(mine)} blobs, Caffe has "
                       f"{len(refs)}")
            continue
        bad += _check_all("param", [(f"{layer}/{i}", p, r) for i, (p, r)
                                    in enumerate(zip(mine, refs))], tol)
    assert not bad, f"{case}: {len(bad)} mismatch(es):\n" + "\n".join(bad)


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_loss_param_grads_and_blob_grads_match_caffe(case):
    meta = case_meta(case)
    tol = meta["tolerance"]
    with h5py.File(case_dir(case) / meta.get("reference", "reference.h5"), "r") as f:
        inputs, blobs = _group(f, "inputs"), _group(f, "blobs")
        diffs, blob_diffs = _params(f, "diffs"), _group(f, "blob_diffs")
    net = _build(case, retain_blob_grads=True)
    out = net(**inputs)
    bad = _check_all("blob", [(n, out.get(n), ref) for n, ref in blobs.items()], tol)
    net.total_loss().backward()
    grads = net.param_grads()
    for layer, refs in diffs.items():
        mine = grads.get(layer, [])
        bad += _check_all("diff", [(f"{layer}/{i}", mine[i] if i < len(mine) else None, r)
                                   for i, r in enumerate(refs)], tol)
    ours = net.blob_grads()
    bad += _check_all("blob_diff", [(n, ours.get(n), ref) for n, ref in blob_diffs.items()], tol)
    assert not bad, f"{case}: {len(bad)} mismatch(es):\n" + "\n".join(bad)
