"""The documentation's code runs as written: README's caffe_import example (its placeholder
file names replaced by the bundled narrow FCN-8s) and docs/forks.md's own-layer example, fed
to the net it was written for."""
from __future__ import annotations

import re

import pytest
import torch
from support import PACKAGE_CASES, ROOT

from caffe_import.layers import registry

NARROW = PACKAGE_CASES / "voc_fcn8s_narrow"


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S)


def test_readme_caffe_import_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = python_blocks("README.md")[0]
    for placeholder, real in (("deploy.prototxt", "net.prototxt"), ("model.caffemodel", "weights.caffemodel"),
                              ("reference.h5", "reference.h5")):
        assert f'"{placeholder}"' in block
        block = block.replace(f'"{placeholder}"', repr(str(NARROW / real)))
    exec(compile(block, "README.md", "exec"), {"image_bchw": torch.rand(1, 3, 40, 40)})
    assert capsys.readouterr().out.strip().endswith("blobs within tolerance")
    assert (tmp_path / "copy.caffemodel").stat().st_size > 0


@pytest.fixture
def clean_registry():
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_forks_md_own_layer_example_builds(clean_registry):
    """The `@register` example of docs/forks.md ('Your own fork'), with its fork field read
    from a schema-free stand-in, builds and runs in a net."""
    layer_code = next(b for b in python_blocks("docs/forks.md") if "@register(\"Mine\")" in b)
    exec(compile(layer_code.replace("self.param.my_param.alpha", "2.0"), "forks.md", "exec"), {})
    from caffe_import import CaffeNet

    net = CaffeNet('layer { name: "data" type: "Input" top: "data" '
                   'input_param { shape { dim: 1 dim: 2 } } } '
                   'layer { name: "m" type: "Mine" bottom: "data" top: "m" }')
    assert torch.equal(net(data=torch.ones(1, 2))["m"], torch.full((1, 2), 2.0))
