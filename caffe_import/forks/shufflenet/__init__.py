"""ShuffleNet Caffe ports (farmingyard/ShuffleNet): the catalogue entry; ShuffleChannel in
``layers.py``."""
from .. import Fork

FORK = Fork(
    "shufflenet", "ShuffleNet Caffe ports (farmingyard/ShuffleNet)",
    "farmingyard/ShuffleNet@566005ebf20f5a675feb9b53d27ee94e4bd89648 README.md",
    ("ShuffleChannel",),
    rank=100)
