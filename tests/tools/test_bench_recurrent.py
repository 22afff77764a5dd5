"""tools/bench_recurrent.py: the sequence and the single steps it times compute the same
outputs (the state carried between single forwards), and it prints one ratio line per type."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from support import ROOT

BENCH = ROOT / "tools" / "bench_recurrent.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_recurrent", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_a_sequence_equals_its_single_steps(bench, kind):
    with torch.no_grad():
        seq, one = bench.build(kind, 6, 3, 5, 4), bench.build(kind, 1, 3, 5, 4)
        one.load_state_dict(seq.state_dict())
        x, cont = torch.randn(6, 3, 5), torch.ones(6, 3)
        cont[0] = cont[3, 1] = 0
        whole = seq(x=x, cont=cont)["h"]
        steps = torch.cat([one(x=x[t:t + 1], cont=cont[t:t + 1])["h"] for t in range(6)])
    torch.testing.assert_close(whole, steps, rtol=1e-6, atol=1e-6)


def test_it_prints_a_ratio_per_type(bench, capsys):
    bench.main(["--steps", "3", "--batch", "2", "--inputs", "3", "--hidden", "4", "--repeat", "1",
                "--backward"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["LSTM", "RNN"]
    assert all("ratio" in line for line in lines[1:])
