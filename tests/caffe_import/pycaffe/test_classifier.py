"""caffe_import.pycaffe.classifier and detector: pycaffe's Classifier and Detector."""
from __future__ import annotations

import numpy as np
from PIL import Image

from caffe_import import pycaffe as caffe


def test_classifier_predict(tiny):
    clf = caffe.Classifier(str(tiny / "deploy.prototxt"), str(tiny / "weights.caffemodel"),
                           image_dims=(10, 10), raw_scale=255, channel_swap=(2, 1, 0),
                           mean=np.array([100.0, 110.0, 120.0]))
    images = [np.random.RandomState(i).rand(12, 14, 3).astype(np.float32) for i in range(3)]
    over = clf.predict(images)
    assert over.shape == (3, 5)
    np.testing.assert_allclose(over.sum(1), 1, rtol=1e-5)
    center = clf.predict(images, oversample=False)
    resized = caffe.io.resize_image(images[0], (10, 10))[1:9, 1:9]
    x = clf.transformer.preprocess("data", resized)
    manual = clf.forward_all(data=x[None])["prob"][0]
    np.testing.assert_allclose(center[0], manual, rtol=1e-5)


def test_detector_windows(tiny, tmp_path):
    rgb = np.random.RandomState(0).randint(0, 256, (20, 24, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "im.png")
    det = caffe.Detector(str(tiny / "deploy.prototxt"), str(tiny / "weights.caffemodel"),
                         raw_scale=255, mean=np.array([100.0, 110.0, 120.0]), context_pad=1)
    windows = [np.array([0, 0, 10, 12]), np.array([5, 6, 19, 23])]
    out = det.detect_windows([(str(tmp_path / "im.png"), windows)])
    assert len(out) == 2 and out[1]["window"] is windows[1]
    assert out[0]["prediction"].shape == (5,)
    assert det.crop(rgb.astype(np.float32), windows[0]).shape == (8, 8, 3)
