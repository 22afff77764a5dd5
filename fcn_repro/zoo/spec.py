"""``ModelSpec``: one model of the FCN release (or a base ILSVRC net) and how to build its nets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from caffe_import.errors import UsageError
from caffe_import.proto import caffe_pb2

#: where the release published its weights (``caffemodel-url`` files of the release)
RELEASE_HOST = "http://dl.caffe.berkeleyvision.org/"

NET_KINDS = ("train", "val", "deploy")


@dataclass(frozen=True)
class SolverFacts:
    """The release's ``solver.prototxt`` of a model, as numbers.

    All FCN solvers use the ``fixed`` lr policy, run no test pass from the solver
    (``test_interval`` 999999999, ``test_initialization: false``) and average the displayed
    loss over 20 iterations.
    """

    base_lr: float
    momentum: float
    iter_size: int
    max_iter: int
    test_iter: int
    weight_decay: float = 0.0005
    snapshot: int | None = 4000
    snapshot_prefix: str | None = "snapshot/train"


@dataclass(frozen=True)
class ModelSpec:
    """A model by name: its data, its nets and its solver.

    ``build(kind)`` makes the ``NetParameter`` for ``kind`` in ``("train", "val",
    "deploy")``. The release's nets are what its ``net.py`` wrote: ``train`` is its training
    net (``train.prototxt``; NYUDv2 and SIFT Flow call it ``trainval.prototxt``), ``val`` its
    evaluation net (``val.prototxt``; ``test.prototxt`` for NYUDv2 and SIFT Flow), both fed
    by the release's Python data layers; ``deploy`` replaces the data layer by an ``Input``
    layer named ``input`` (example shapes in ``input_shapes``) and drops Dropout and loss
    layers, like the release's ``voc-fcn8s/deploy.prototxt``.
    """

    name: str
    family: str
    #: the dataset it is scored on, by its ``fcn_repro.data`` name (``voc``, ``siftflow``,
    #: ``nyud``, ``pascalcontext``); ``ilsvrc2012`` for the base classifiers (no dataset class)
    dataset: str
    num_classes: int
    mean: tuple[float, ...]
    weights_file: str | None
    build: Callable[[str], caffe_pb2.NetParameter] = field(repr=False, compare=False)
    solver_facts: SolverFacts | None = None
    #: deploy input blob -> example shape (N, C, H, W)
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: input blob -> the mean subtracted from it (BGR for colour images)
    means: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    #: score blobs of the deploy net (SIFT Flow has two: semantic and geometric)
    outputs: tuple[str, ...] = ("score",)
    #: label blobs of the train/val nets, in data-layer top order
    labels: tuple[str, ...] = ("label",)
    #: which of train/val/deploy exist (the base ILSVRC nets are deploy-only)
    nets: tuple[str, ...] = NET_KINDS
    weights_url: str | None = None
    description: str = ""

    def _net(self, kind: str) -> caffe_pb2.NetParameter:
        if kind not in self.nets:
            raise UsageError(
                f"model {self.name!r} has no {kind} net (available: {', '.join(self.nets)})")
        return self.build(kind)

    def train_net(self) -> caffe_pb2.NetParameter:
        """The release's training net (Python data layer, loss)."""
        return self._net("train")

    def val_net(self) -> caffe_pb2.NetParameter:
        """The release's evaluation net (Python data layer over the val/test split, loss)."""
        return self._net("val")

    def deploy_net(self) -> caffe_pb2.NetParameter:
        """Inference net: ``Input`` layer, no Dropout, no loss."""
        return self._net("deploy")

    def net(self, kind: str) -> caffe_pb2.NetParameter:
        return self._net(kind)

    @property
    def has_solver(self) -> bool:
        return self.solver_facts is not None

    def solver(self) -> caffe_pb2.SolverParameter:
        """The release's solver; nets referenced as ``train.prototxt`` / ``val.prototxt``."""
        f = self.solver_facts
        if f is None:
            raise UsageError(f"model {self.name!r} has no solver (a base net, deploy only)")
        s = caffe_pb2.SolverParameter()
        s.train_net = "train.prototxt"
        s.test_net.append("val.prototxt")
        s.test_iter.append(f.test_iter)
        s.test_interval = 999999999
        s.display = 20
        s.average_loss = 20
        s.lr_policy = "fixed"
        s.base_lr = f.base_lr
        s.momentum = f.momentum
        s.iter_size = f.iter_size
        s.max_iter = f.max_iter
        s.weight_decay = f.weight_decay
        if f.snapshot is not None:
            s.snapshot = f.snapshot
        if f.snapshot_prefix is not None:
            s.snapshot_prefix = f.snapshot_prefix
        s.test_initialization = False
        return s

    @property
    def url(self) -> str | None:
        """Where the weights were published (``RELEASE_HOST`` + file unless stated)."""
        if self.weights_url:
            return self.weights_url
        return RELEASE_HOST + self.weights_file if self.weights_file else None
