"""``fcn-repro demo``: everything offline, right after install.

1. Loads the bundled ``assets/voc_fcn8s_narrow`` (an FCN-8s with the VGG16 topology at 1/16 of
   the widths and *random* weights, written by real Caffe, with Caffe's own activations for one
   input in ``reference.h5``) and converts it to a :class:`caffe_import.net.CaffeNet`.
2. Checks parity: runs Caffe's stored input and compares every blob with Caffe's.
3. Segments the release's demo image with the VOC preprocessing and writes the label PNG, the
   colour overlay and a side-by-side figure.
4. Says what to do next with the real weights.

The weights are random, so the segmentation means nothing: it shows the pipeline runs end to end.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from caffe_import.io.atomic import atomic_open
from caffe_import.net import CaffeNet
from caffe_import.parity import check_parity
from fcn_repro.data.base import open_image
from fcn_repro.data.transforms import VOC_MEAN_BGR, rgb_array
from fcn_repro.download import weights_path
from fcn_repro.infer import segment
from fcn_repro.palette import colorize, save_label_png, save_overlay_png

ASSETS = Path(__file__).resolve().parent / "assets"
NARROW = ASSETS / "voc_fcn8s_narrow"
DEMO_IMAGE = ASSETS / "fcn_release" / "demo" / "image.jpg"
DEMO_LABEL = ASSETS / "fcn_release" / "demo" / "label.png"


def next_steps() -> str:
    """What to run with the release's real weights, naming where ``download`` puts them."""
    weights = shlex.quote(str(weights_path("voc-fcn8s")))
    return f"""\
Next, with the release's real weights:
  fcn-repro download voc-fcn8s
  fcn-repro infer --model voc-fcn8s --weights {weights} my_photo.jpg -o out/
  fcn-repro eval --model voc-fcn8s --weights {weights} \\
      --dataset voc --root VOCdevkit/VOC2011 --split seg11valid -o results/voc-fcn8s/metrics.json
  fcn-repro tables --results results/"""


@dataclass
class DemoResult:
    parity_ok: bool
    parity_summary: str
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _parity(net, device: torch.device) -> tuple[bool, str, str]:
    """(ok, table, summary) against the stored Caffe activations."""
    report = check_parity(net, None, NARROW / "reference.h5", device=device)
    return report.ok, report.table(), report.summary


def _figure(rgb: np.ndarray, gt: np.ndarray | None, pred: np.ndarray, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = [("image", rgb)] + ([("release's label", colorize(gt))] if gt is not None else []) + \
             [("prediction (random weights!)", colorize(pred))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (title, img) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    try:
        with atomic_open(path) as fh:
            fig.savefig(fh, format="png", dpi=90)
    finally:
        plt.close(fig)
    return path


def run_demo(output_dir: str | os.PathLike = "fcn_demo_out", device: str | torch.device = "cpu",
             echo: Callable[[str], None] = print) -> DemoResult:
    """Run the demo (see module doc), printing as it goes through ``echo``."""
    device = torch.device(device)
    out = Path(output_dir)
    meta = json.loads((NARROW / "meta.json").read_text())
    echo("FCN demo, offline: the bundled narrow FCN-8s (VGG16 topology, widths / 16, 21 VOC classes)")
    echo(f"  weights: RANDOM, written by real Caffe ({meta.get('caffe', 'BVLC Caffe')})")
    t0 = time.perf_counter()
    net = CaffeNet(str(NARROW / "net.prototxt"), weights=str(NARROW / "weights.caffemodel"), phase="test").to(device)
    net.eval()
    t_convert = time.perf_counter() - t0
    n_params = sum(p.numel() for p in net.parameters())
    echo(f"converted {len(net.layer_names)} layers, {n_params:,} parameters in {t_convert:.2f} s on {device}")

    echo("\nparity with Caffe's own activations (reference.h5):")
    t0 = time.perf_counter()
    ok, table, summary = _parity(net, device)
    t_parity = time.perf_counter() - t0
    echo(table)

    rgb = rgb_array(open_image(DEMO_IMAGE))
    t0 = time.perf_counter()
    seg = segment(net, rgb, mean_bgr=VOC_MEAN_BGR, device=device, heads=["score"])
    t_segment = time.perf_counter() - t0
    pred = seg.labels["score"]
    gt = np.asarray(open_image(DEMO_LABEL), dtype=np.uint8) if DEMO_LABEL.exists() else None
    files = {
        "label": save_label_png(pred, out / "demo_label.png"),
        "overlay": save_overlay_png(rgb, pred, out / "demo_overlay.png"),
        "figure": _figure(rgb, gt, pred, out / "demo_figure.png"),
    }
    echo(f"\nsegmented the release's demo image ({rgb.shape[1]}x{rgb.shape[0]}) in {t_segment:.2f} s; wrote:")
    for path in files.values():
        echo(f"  {path}")
    echo("\nNOTE: these weights are random, so this segmentation is meaningless. It only shows that the\n"
         "conversion, the preprocessing and the output files work; the parity check above is what\n"
         "says the converted net computes what Caffe computes.")
    echo("\n" + next_steps())
    return DemoResult(ok, summary, files,
                      {"convert": t_convert, "parity": t_parity, "segment": t_segment})
