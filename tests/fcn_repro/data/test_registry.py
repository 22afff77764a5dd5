"""The dataset table: canonical names, default splits, options a model name implies."""
from __future__ import annotations

import pytest

from caffe_import.errors import UsageError
from fcn_repro import zoo
from fcn_repro.data import DATASETS, dataset_info, get_dataset
from fcn_repro.data.nyud import MODALITIES
from fcn_repro.data.synthetic import make_dataset


@pytest.mark.parametrize("model, modality", [
    ("nyud-fcn32s-color", "color"), ("nyud-fcn32s-hha", "hha"),
    ("nyud-fcn32s-color-d", "color-depth"), ("nyud-fcn32s-color-hha", "color-hha"),
    (None, "color"), ("my-own-net", "color")])
def test_nyud_modality_follows_the_release_model_name(model, modality):
    assert dataset_info("nyud").model_options(model) == {"modality": modality}


def test_every_zoo_model_names_a_dataset_of_the_table():
    for name in zoo.names():
        spec = zoo.get(name)
        if spec.family != "ilsvrc":
            assert dataset_info(spec.dataset).name == spec.dataset, name
            if spec.dataset == "nyud":  # the modality its name implies feeds its inputs
                modality = dataset_info("nyud").model_options(name)["modality"]
                inputs = set(spec.input_shapes)
                assert inputs == ({"data"} if len(MODALITIES[modality]) == 1 else set(MODALITIES[modality])), name


def test_unknown_names_and_options_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown dataset 'pascal-voc'; one of voc, sbd"):
        dataset_info("pascal-voc")
    root = make_dataset("voc", tmp_path, n=1)
    with pytest.raises(UsageError, match="takes no option modality"):
        get_dataset("voc", root, modality="hha")


def test_split_defaults_to_the_one_the_release_scored(tmp_path):
    assert {n: (d.train_split, d.eval_split) for n, d in DATASETS.items()} == {
        "voc": ("train", "seg11valid"), "sbd": ("train", "val"), "siftflow": ("trainval", "test"),
        "nyud": ("trainval", "test"), "pascalcontext": ("train", "val")}
    ds = get_dataset("nyud", make_dataset("nyud", tmp_path, n=1), model="nyud-fcn32s-color-hha")
    assert (ds.split, ds.modality) == ("test", "color-hha")
    assert get_dataset("nyud", tmp_path, model="nyud-fcn32s-color-hha", modality="hha").modality == "hha"


def test_each_class_registers_beside_its_definition():
    from fcn_repro.data import NYUDSegmentation, VOCSegmentation
    from fcn_repro.data.registry import register_dataset

    assert dataset_info("voc").cls is VOCSegmentation and dataset_info("nyud").cls is NYUDSegmentation
    with pytest.raises(RuntimeError, match="registered twice"):
        register_dataset("voc", train_split="train", eval_split="val")(VOCSegmentation)
    assert dataset_info("voc").eval_split == "seg11valid"
