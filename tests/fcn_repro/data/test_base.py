"""What every dataset class shares (fcn_repro.data.base)."""
from __future__ import annotations

import pytest

from caffe_import.errors import UsageError
from fcn_repro.data import VOCSegmentation
from fcn_repro.data.synthetic import make_dataset


def test_a_dataset_of_no_images_is_refused(tmp_path):
    with pytest.raises(UsageError, match="at least 1"):
        VOCSegmentation(make_dataset("voc", tmp_path, n=1), "val", limit=0)
