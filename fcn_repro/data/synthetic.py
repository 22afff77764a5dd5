"""Small random datasets in each release layout, for tests and for trying the tools offline.

``make_dataset(kind, root, n, seed)`` writes ``n`` images of varied sizes with labels in the
dataset's own encoding (palette PNG, ``GTcls`` struct, ``S`` / ``segmentation`` / ``LabelMap``
variables), including void pixels, and the split lists, and returns the folder to give the
dataset class as ``root``. Ids are taken from the release's own split lists where there is one
(seg11valid, SIFT Flow test, NYUDv2 test) so that every split name the tools use works.
Each dataset written holds the file ``MARKER``: ``fcn-repro eval`` records scores of such a
root as ``"synthetic_data": true`` and ``fcn-repro tables`` says so in the row.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from caffe_import.errors import UsageError
from fcn_repro.data._layout import ASSETS
from fcn_repro.data.registry import dataset_info
from fcn_repro.data.siftflow import SUBDIR
from fcn_repro.palette import label_image


#: the file every dataset :func:`make_dataset` writes holds (see :func:`is_synthetic`)
MARKER = "SYNTHETIC_DATA.txt"


def is_synthetic(root: str | Path) -> bool:
    """Whether ``root`` is a dataset :func:`make_dataset` wrote (random images and labels)."""
    return (Path(root) / MARKER).is_file()


def _ids(listing: Path, n: int) -> list[str]:
    ids = [l.strip() for l in listing.read_text().splitlines() if l.strip()]
    if n > len(ids):
        raise UsageError(f"at most {len(ids)} synthetic items for this layout, asked for {n}")
    return ids[:n]


def _size(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(20, 48)), int(rng.integers(20, 48))


def _rgb(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _labels(rng: np.random.Generator, h: int, w: int, low: int, high: int, void: int | None) -> np.ndarray:
    """Blocky labels in [low, high) with a void border (as VOC's object outlines are void)."""
    coarse = rng.integers(low, high, (max(1, h // 6), max(1, w // 6)))
    lab = np.kron(coarse, np.ones((6, 6), dtype=coarse.dtype))[:h, :w]
    lab = np.pad(lab, ((0, h - lab.shape[0]), (0, w - lab.shape[1])), mode="edge")
    if void is not None:
        lab[0, :] = void
        lab[:, -1] = void
    return lab


def _write_list(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def make_dataset(kind: str, root: str | Path, n: int = 3, seed: int = 0) -> Path:
    """Write a random ``kind`` dataset (a name of :func:`fcn_repro.data.dataset_names`) of ``n``
    items under ``root``."""
    kind = dataset_info(kind).name  # an unknown name is a UsageError listing the known
    root = Path(root)
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    _WRITERS[kind](root, n, rng)
    (root / MARKER).write_text("Random images and labels written by fcn-repro synthetic-data "
                               "(fcn_repro.data.synthetic.make_dataset), not a real dataset: "
                               "scores on it say nothing of a model.\n")
    return root


def _make_voc(root: Path, n: int, rng: np.random.Generator) -> None:
    ids = _ids(ASSETS / "pascal" / "seg11valid.txt", n)
    for idx in ids:
        h, w = _size(rng)
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        _rgb(rng, h, w).save(root / "JPEGImages" / f"{idx}.jpg", quality=95)
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        label_image(_labels(rng, h, w, 0, 21, 255)).save(root / "SegmentationClass" / f"{idx}.png")
    for split in ("train", "val", "seg11valid"):
        _write_list(root / "ImageSets" / "Segmentation" / f"{split}.txt", ids)


def _make_sbd(root: Path, n: int, rng: np.random.Generator) -> None:
    ids = [f"2008_{i:06d}" for i in range(n)]
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "cls").mkdir(parents=True, exist_ok=True)
    for idx in ids:
        h, w = _size(rng)
        _rgb(rng, h, w).save(root / "img" / f"{idx}.jpg", quality=95)
        seg = _labels(rng, h, w, 0, 21, None).astype(np.uint8)
        gt = {"Segmentation": seg, "Boundaries": np.zeros((20, 1), dtype=object),
              "CategoriesPresent": np.unique(seg[seg > 0]).astype(np.uint8)}
        scipy.io.savemat(root / "cls" / f"{idx}.mat", {"GTcls": gt})
    for split in ("train", "val"):
        _write_list(root / f"{split}.txt", ids)


def _make_siftflow(root: Path, n: int, rng: np.random.Generator) -> None:
    ids = _ids(ASSETS / "sift-flow" / "test.txt", n)
    for folder in ("Images", "SemanticLabels", "GeoLabels"):
        (root / folder / SUBDIR).mkdir(parents=True, exist_ok=True)
    for idx in ids:
        h, w = _size(rng)
        _rgb(rng, h, w).save(root / "Images" / SUBDIR / f"{idx}.jpg", quality=95)
        sem = _labels(rng, h, w, 1, 34, 0).astype(np.int32)  # 0 void, 1..33
        geo = _labels(rng, h, w, 1, 4, -1).astype(np.int32)  # -1 void, 1..3
        geo[1, :] = 0  # 0 also occurs in the geometric maps and is void
        scipy.io.savemat(root / "SemanticLabels" / SUBDIR / f"{idx}.mat", {"S": sem})
        scipy.io.savemat(root / "GeoLabels" / SUBDIR / f"{idx}.mat", {"S": geo})
    for split in ("trainval", "test"):
        _write_list(root / f"{split}.txt", ids)


def _make_nyud(root: Path, n: int, rng: np.random.Generator) -> None:
    ids = _ids(ASSETS / "nyud" / "test.txt", n)
    for folder in ("data/images", "data/depth", "data/hha", "segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for idx in ids:
        h, w = _size(rng)
        _rgb(rng, h, w).save(root / "data" / "images" / f"img_{idx}.png")
        depth = rng.integers(500, 10000, (h, w)).astype(np.uint16)  # millimetres
        Image.fromarray(depth).save(root / "data" / "depth" / f"img_{idx}.png")
        _rgb(rng, h, w).save(root / "data" / "hha" / f"img_{idx}.png")
        seg = _labels(rng, h, w, 1, 41, 0).astype(np.uint8)  # 0 void, 1..40
        scipy.io.savemat(root / "segmentation" / f"img_{idx}.mat", {"segmentation": seg})
    for split in ("train", "val", "test", "trainval"):
        _write_list(root / f"{split}.txt", ids)


def _make_pascalcontext(root: Path, n: int, rng: np.random.Generator) -> None:
    ids = [f"2008_{i:06d}" for i in range(n)]
    voc = root / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "trainval").mkdir(parents=True, exist_ok=True)
    for idx in ids:
        h, w = _size(rng)
        _rgb(rng, h, w).save(voc / "JPEGImages" / f"{idx}.jpg", quality=95)
        full = _labels(rng, h, w, 0, 460, None).astype(np.uint16)  # full 459-label annotation
        scipy.io.savemat(root / "trainval" / f"{idx}.mat", {"LabelMap": full})
    for split in ("train", "val"):
        _write_list(voc / "ImageSets" / "Main" / f"{split}.txt", ids)


_WRITERS = {"voc": _make_voc, "sbd": _make_sbd, "siftflow": _make_siftflow, "nyud": _make_nyud,
            "pascalcontext": _make_pascalcontext}
