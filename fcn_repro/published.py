"""Published FCN numbers, as data: the targets the results tables compare against.

Sources: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (arXiv 1411.4038 v2, whose appendix adds PASCAL-Context), and the reference release
(fcn.berkeleyvision.org) with its own seg11valid scores. All values are percent, as score.py
defines them on the confusion matrix summed over the split. Only rows that correspond to a
model of the release are kept (plus the release's own scores); ``None`` means not reported.

Note that the release's VOC models are re-trained ("heavy") versions of the paper's, so their
published seg11valid scores (63.6 / 65.0 / 65.5) are higher than the paper's Table 2.
"""
from __future__ import annotations

from dataclasses import dataclass

METRICS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "geometric_acc")
METRIC_TITLES = {"pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "mean_iu": "mean IU",
                 "fw_iu": "f.w. IU", "geometric_acc": "geom. acc."}


@dataclass(frozen=True)
class PublishedRow:
    """One published result and the release model / dataset / split it was measured on."""

    table: str
    label: str
    model: str
    dataset: str
    split: str
    pixel_acc: float | None = None
    mean_acc: float | None = None
    mean_iu: float | None = None
    fw_iu: float | None = None
    geometric_acc: float | None = None
    note: str = ""

    def value(self, metric: str) -> float | None:
        return getattr(self, metric)


TABLES: dict[str, str] = {
    "cvpr-1": "CVPR 2015 Table 1 (with extra data, seg11valid)",
    "cvpr-2": "CVPR 2015 Table 2 (VOC2011 seg11valid)",
    "cvpr-3": "CVPR 2015 Table 3 (PASCAL VOC test, evaluation server)",
    "cvpr-4": "CVPR 2015 Table 4 (NYUDv2 test)",
    "cvpr-5": "CVPR 2015 Table 5 (SIFT Flow test)",
    "release": "The reference release's models (seg11valid)",
    "third-party": "Third-party evaluation of the converted release models (seg11valid)",
    "context": "arXiv v2 appendix Table 6 (PASCAL-Context val, 59 classes + background)",
}

ROWS: tuple[PublishedRow, ...] = (
    PublishedRow("cvpr-1", "FCN-AlexNet (extra data)", "voc-fcn-alexnet", "voc", "seg11valid", mean_iu=48.0),
    PublishedRow("cvpr-1", "FCN-VGG16 (extra data)", "voc-fcn32s", "voc", "seg11valid", mean_iu=59.4,
                 note="release model is the heavy re-training"),
    PublishedRow("cvpr-2", "FCN-32s", "voc-fcn32s", "voc", "seg11valid", 89.1, 73.3, 59.4, 81.4,
                 note="release model is the heavy re-training"),
    PublishedRow("cvpr-2", "FCN-16s", "voc-fcn16s", "voc", "seg11valid", 90.0, 75.7, 62.4, 83.0,
                 note="release model is the heavy re-training"),
    PublishedRow("cvpr-2", "FCN-8s", "voc-fcn8s", "voc", "seg11valid", 90.3, 75.9, 62.7, 83.2,
                 note="release model is the heavy re-training"),
    PublishedRow("cvpr-3", "FCN-8s (VOC2011 test)", "voc-fcn8s", "voc", "test2011", mean_iu=62.7,
                 note="test labels are private: PASCAL evaluation server"),
    PublishedRow("cvpr-3", "FCN-8s (VOC2012 test)", "voc-fcn8s", "voc", "test2012", mean_iu=62.2,
                 note="test labels are private: PASCAL evaluation server"),
    PublishedRow("cvpr-4", "FCN-32s RGB", "nyud-fcn32s-color", "nyud", "test", 60.0, 42.2, 29.2, 43.9),
    PublishedRow("cvpr-4", "FCN-32s RGBD", "nyud-fcn32s-color-d", "nyud", "test", 61.5, 42.4, 30.5, 45.5,
                 note="no weights were published for this model"),
    PublishedRow("cvpr-4", "FCN-32s HHA", "nyud-fcn32s-hha", "nyud", "test", 57.1, 35.2, 24.2, 40.4),
    PublishedRow("cvpr-4", "FCN-32s RGB-HHA", "nyud-fcn32s-color-hha", "nyud", "test", 64.3, 44.9, 32.8, 48.0),
    PublishedRow("cvpr-5", "FCN-16s", "siftflow-fcn16s", "siftflow", "test", 85.2, 51.7, 39.5, 76.1, 94.3,
                 note="cow, desert, moon left out of class averages"),
    PublishedRow("release", "voc-fcn32s", "voc-fcn32s", "voc", "seg11valid", mean_iu=63.6),
    PublishedRow("release", "voc-fcn16s", "voc-fcn16s", "voc", "seg11valid", mean_iu=65.0),
    PublishedRow("release", "voc-fcn8s", "voc-fcn8s", "voc", "seg11valid", mean_iu=65.5),
    PublishedRow("release", "voc-fcn8s-atonce", "voc-fcn8s-atonce", "voc", "seg11valid", mean_iu=65.4),
    PublishedRow("release", "voc-fcn-alexnet", "voc-fcn-alexnet", "voc", "seg11valid", mean_iu=48.0),
    PublishedRow("third-party", "voc-fcn32s", "voc-fcn32s", "voc", "seg11valid", 90.48, 76.48, 63.63, 83.46),
    PublishedRow("third-party", "voc-fcn16s", "voc-fcn16s", "voc", "seg11valid", 91.00, 78.07, 65.01, 84.26),
    PublishedRow("third-party", "voc-fcn8s", "voc-fcn8s", "voc", "seg11valid", 91.22, 77.61, 65.51, 84.54),
    PublishedRow("third-party", "voc-fcn8s-atonce", "voc-fcn8s-atonce", "voc", "seg11valid", 91.13, 78.50, 65.40, 84.43),
    PublishedRow("context", "FCN-32s", "pascalcontext-fcn32s", "pascalcontext", "val", 63.8, 42.7, 31.8, 48.3),
    PublishedRow("context", "FCN-16s", "pascalcontext-fcn16s", "pascalcontext", "val", 65.7, 46.2, 34.8, 50.7),
    PublishedRow("context", "FCN-8s", "pascalcontext-fcn8s", "pascalcontext", "val", 65.9, 46.5, 35.1, 51.0),
)

# Published numbers with no release model to compare against, for reference only:
#   cvpr-1 VOC2011 val mean IU, AlexNet / VGG16 / GoogLeNet: 39.8 / 56.0 / 42.5
#   cvpr-2 FCN-32s-fixed, pixel / mean acc / mean IU / f.w. IU: 83.0 / 59.7 / 45.4 / 72.0
#   cvpr-4 FCN-16s RGB-HHA, the same four: 65.4 / 46.1 / 34.0 / 49.5
#   context, 33 classes, FCN-32s / 16s / 8s mean IU: 50.4 / 53.4 / 53.5
#   PAMI 2016 FCN-8s heavy, VOC2012 test mean IU: 67.2
