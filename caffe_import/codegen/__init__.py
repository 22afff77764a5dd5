"""A converted net as plain, readable PyTorch source: ``model.py`` (one ``nn.Module``, no
import of this package) and ``model.safetensors`` (its ``state_dict``).

``generate(net)`` writes the source and state of a built ``CaffeNet``; ``write_module(net,
out_dir)`` checks the generated module against the net, then writes the files
(``caffe-import codegen``). One emitter per layer class (``codegen.emit``) writes each layer;
Caffe's numerics where ``torch.nn`` differs live in ``codegen.runtime`` and are copied into
model.py only where used. See docs/codegen.md.
"""
from __future__ import annotations

from .generate import Generated, generate
from .verify import check, load_generated, verify
from .write import MODEL_FILE, WEIGHTS_FILE, write_module

__all__ = ["Generated", "generate", "write_module", "verify", "check", "load_generated",
           "MODEL_FILE", "WEIGHTS_FILE"]
