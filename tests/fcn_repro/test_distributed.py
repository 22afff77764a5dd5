"""Two gloo processes on CPU: sharded evaluation scores like one process; a DDP step equals
one process with iter_size 2 (both average two images' gradients, as Caffe's multi-GPU does)."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from caffe_import.proto import caffe_pb2

pytest.importorskip("caffe_import.net")
if not torch.distributed.is_available():
    pytest.skip("torch.distributed not available", allow_module_level=True)

from support.tiny_segmentation import NET, Toy  # noqa: E402


def build_net():
    from caffe_import.net import CaffeNet
    torch.manual_seed(0)
    return CaffeNet(NET, phase="train")


def feed_of(ds, rank: int, world: int):
    from fcn_repro.feeding import item_to_blobs
    return lambda k: item_to_blobs(ds[k * world + rank], ["data"], ["label"])


def score(net, ds, **kw):
    from fcn_repro.evaluate import EvalPlan, evaluate_net, scores_by_head
    plan = EvalPlan.for_net(net, ds, labels=["label"])
    return scores_by_head(evaluate_net(net, ds, plan, progress=False, **kw))


def sgd(iter_size: int = 1) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(base_lr=0.01, lr_policy="fixed", momentum=0.9, weight_decay=5e-4,
                                     iter_size=iter_size, max_iter=10)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from caffe_import.solver import Solver
    from fcn_repro import distributed as D
    info = D.init_from_env(device="cpu")
    try:
        net = build_net()
        ds = Toy()
        scores = score(net, ds, indices=D.shard(len(ds)), all_reduce=True)
        model = D.wrap_ddp(net)
        solver = Solver(sgd(), net, feed=feed_of(ds, info.rank, info.world_size), model=model)
        solver.step(2)
        params = {f"{n}/{i}": p.detach().numpy().tolist() for n, ps in net.params.items()
                  for i, p in enumerate(ps)}
        Path(out, f"rank{rank}.json").write_text(json.dumps(
            {"mean_iu": scores["score"]["mean_iu"], "pixel_acc": scores["score"]["pixel_acc"],
             "loss": scores["loss"], "params": params}))
        del model, solver  # DDP's reducer holds the group: free it while the peer is there
    finally:
        D.cleanup()
    # the results are written: skip the interpreter's teardown, where torch 2.1's gloo can
    # hang joining its threads once the other rank has gone
    os._exit(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    context = mp.spawn(_worker, args=(2, free_port(), str(out)), nprocs=2, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):  # raises if a rank failed
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two ranks did not finish within 300 s")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_sharded_evaluation_equals_one_process(two_ranks):
    one = score(build_net(), Toy())
    for r in two_ranks:
        assert r["mean_iu"] == pytest.approx(one["score"]["mean_iu"], abs=0)
        assert r["pixel_acc"] == pytest.approx(one["score"]["pixel_acc"], abs=0)
        assert r["loss"] == pytest.approx(one["loss"], rel=1e-6)


def test_ddp_step_equals_iter_size_two_in_one_process(two_ranks):
    from caffe_import.solver import Solver
    net = build_net()
    Solver(sgd(iter_size=2), net, feed=lambda k: feed_of(Toy(), 0, 1)(k)).step(2)
    for name, ps in net.params.items():
        for i, p in enumerate(ps):
            key = f"{name}/{i}"
            np.testing.assert_array_equal(two_ranks[0]["params"][key], two_ranks[1]["params"][key])
            np.testing.assert_allclose(two_ranks[0]["params"][key], p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_shard_is_round_robin():
    from fcn_repro.distributed import shard
    assert shard(5, 0, 2) == [0, 2, 4] and shard(5, 1, 2) == [1, 3]
