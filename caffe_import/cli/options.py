"""Argument types and up-front checks the verbs of both commands share.

Two kinds, both failing before any real work (a dataset scan, a net build, a training run)
and never as a traceback from deep inside torch or the file system:

* argparse ``type=`` functions (:func:`device`, :func:`output_dir`, :func:`output_file`):
  checked at parse time, reported with the verb's usage line; they read nothing from disk
  but a path's kind, so parsing a command line stays side-effect free; the one exception is
  ``--fork``/``--proto`` (:func:`add_schema_options`), resolved at parse time into the one
  :class:`~caffe_import.proto.schema.Schema` the verb passes down as ``args.schema`` (a
  ``--proto`` file is read and compiled then);
* ``require_*`` functions, called at the top of a verb's ``run``: inputs that must exist and
  be of the right kind, raising :class:`CaffeFormatError` naming the file.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..device import DeviceUnavailable, resolve_device
from ..errors import CaffeFormatError, UsageError
from ..export import parse_shape
from ..io import detect
from ..io.text import ParsedNet, parse_net
from ..layers.python_layer import DEFAULT_PYTHON_LAYERS, PythonLayerRegistry, builtin_python_layers
from ..net.weights import strict_weights
from ..proto.schema import BVLC, Schema, fork_names, get_schema


def device(text: str) -> str:
    """A torch device string this machine can use: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` ...

    Returns the string unchanged (the verbs pass it on); checked by
    ``caffe_import.device.resolve_device`` so a CPU-only machine says so instead of failing
    inside a layer.
    """
    try:
        resolve_device(text)
    except DeviceUnavailable as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision exact|fast`` (see ``caffe_import.precision``), for every verb that runs
    or builds a net."""
    parser.add_argument("--precision", choices=("exact", "fast"), default="exact",
                        help="exact: Caffe's float32 numbers (default); fast: bf16 where the "
                             "layers allow, channels_last, fused kernels (about 1e-2 relative "
                             "off exact; see docs/performance.md)")


def add_strict(parser: argparse.ArgumentParser) -> None:
    """``--strict`` for every verb that loads weights into a net: a layer with params that the
    weights file does not name is an error (exit 2) instead of a warning."""
    parser.add_argument("--strict", action="store_true",
                        help="fail when a layer of the net with params finds no weights in the "
                             "weights file (default: warn and keep its initial values, zeros "
                             "where the prototxt names no filler; Caffe says nothing)")


_OWN_PACKAGES = ("caffe_import", "fcn_repro")


@contextlib.contextmanager
def verb_scope(args: argparse.Namespace, prog: str) -> Iterator[None]:
    """What every verb runs inside: weights loads strict when ``--strict`` was given, and the
    project's own warnings (their class defined in ``caffe_import`` or ``fcn_repro``, as
    :class:`~caffe_import.net.weights.MissingWeightsWarning`) printed as one line,
    ``<prog>: warning: <message>``; other libraries' warnings keep Python's form."""
    with warnings.catch_warnings(), strict_weights(bool(getattr(args, "strict", False))):
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
            if category.__module__.split(".")[0] in _OWN_PACKAGES:
                print(f"{prog}: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, *rest, **kw)

        warnings.showwarning = show
        yield
SHAPE_EXAMPLE = "1x3x500x500"
_SHAPE = re.compile(r"\s*\d[\d\s]*([x,]\s*\d[\d\s]*)*")


def name_value(text: str, expected: str, *, empty: bool = False) -> tuple[str, str]:
    """One ``--input NAME=VALUE`` option (every verb's, caffe-import's and fcn-repro's) as
    ``(name, value)``; an ``ArgumentTypeError`` saying ``expected`` when it is not one
    (``empty``: the value may be empty, for its own parser to judge)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not (value or empty):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
    return name, value


def input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``NAME=SHAPE`` (``data=1x3x500x500``) -> ``("data", (1, 3, 500, 500))``, for
    ``--input``."""
    name, shape = name_value(text, f"NAME={SHAPE_EXAMPLE}", empty=True)
    try:
        return name, parse_shape(shape)
    except CaffeFormatError as exc:
        raise argparse.ArgumentTypeError(f"{name}: {exc}") from None


def input_shape_or_file(text: str) -> tuple[str, tuple[int, ...] | Path]:
    """``NAME=SHAPE`` as :func:`input_shape`, or ``NAME=FILE.npy`` (the path, read later)."""
    name, value = name_value(text, f"NAME=FILE.npy or NAME={SHAPE_EXAMPLE}")
    return input_shape(text) if _SHAPE.fullmatch(value) else (name, Path(value))


def input_path(text: str) -> tuple[str, Path]:
    """``NAME=FILE_OR_FOLDER`` (``hha=data/hha``): a second input of a net, for ``--input``."""
    name, value = name_value(text, "NAME=FILE_OR_FOLDER, e.g. hha=data/hha")
    return name, Path(value)


def add_input_shapes(parser: argparse.ArgumentParser, *, files: bool = False,
                     help: str | None = None) -> None:
    """``--input NAME=SHAPE`` (repeatable, ``-i``): the shape of an input blob, for the nets
    whose file leaves it open (a data layer: SegNet's ``DenseImageData``, a shapeless
    ``Input``) or to build for another size; ``CaffeNet(input_shapes=...)`` on the command
    line. Parsed into ``args.input``, a list of ``(name, shape)``; :func:`shapes_of` makes the
    mapping. ``files``: ``NAME=FILE.npy`` is accepted too (the value is then a Path);
    ``help``: the verb's own words for what the shape is for."""
    parser.add_argument("--input", "-i", action="append", default=[],
                        type=input_shape_or_file if files else input_shape,
                        metavar="NAME=FILE.npy|SHAPE" if files else f"NAME={SHAPE_EXAMPLE}",
                        help=help or ("an input blob's value: an array (FILE.npy) or a shape "
                                      "(filled with seeded normal noise); once per input" if files
                                      else "an input blob's shape, for a net whose file leaves it "
                                      "open (a data layer) or to build for another size (repeat "
                                      "for each input)"))


def shapes_of(specs: list[tuple[str, Any]]) -> dict[str, tuple[int, ...]]:
    """``--input`` pairs that give shapes -> ``{name: shape}``."""
    return {name: value for name, value in specs if isinstance(value, tuple)}


def require_known_inputs(net: Any, specs: list[tuple[str, Any]]) -> None:
    """Each ``--input`` names one of ``net``'s input blobs, else a UsageError listing them."""
    unknown = [name for name, _ in specs if name not in net.inputs]
    if unknown:
        raise UsageError(f"--input {unknown[0]}: the net has no input blob {unknown[0]!r} "
                         f"(inputs: {', '.join(net.inputs) or 'none'})")


def builtin_python_layer(text: str) -> str:
    """A built-in class for a well-known Python layer, named ``module.Layer``
    (``rpn.proposal_layer.ProposalLayer``), for ``--builtin-python-layer``."""
    offered = builtin_python_layers()
    if text not in offered:
        raise argparse.ArgumentTypeError(
            f"no built-in Python layer {text!r}; available: {', '.join(sorted(offered))}")
    return text


def add_builtin_python_layers(parser: argparse.ArgumentParser) -> None:
    """``--builtin-python-layer MODULE.LAYER`` (repeatable): build the net's ``type: "Python"``
    layers that name it with caffe_import's own class, for the verbs that build nets (in
    Python: ``caffe_import.forks.fast_rcnn.layers.enable_proposal_layer()``)."""
    names = ", ".join(sorted(builtin_python_layers()))
    parser.add_argument("--builtin-python-layer", action="append", default=[], metavar="MODULE.LAYER",
                        type=builtin_python_layer,
                        help=f"build the net's Python layers of this module and class with "
                             f"caffe_import's built-in one (repeatable; available: {names})")


def python_layers_of(args: argparse.Namespace) -> PythonLayerRegistry | None:
    """The registry the verb's nets build Python layers from: the default one plus each
    ``--builtin-python-layer`` (None when none is given: the default)."""
    chosen = getattr(args, "builtin_python_layer", [])
    if not chosen:
        return None
    offered = builtin_python_layers()
    entries = DEFAULT_PYTHON_LAYERS.entries()
    for name in chosen:
        module, _, layer = name.rpartition(".")
        entries[(module, layer)] = offered[name][0]
    return PythonLayerRegistry(entries)


def output_dir(text: str) -> Path:
    """A folder to write into: may not exist yet, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file; expected a folder to write into")
    return path


def output_file(text: str) -> str:
    """A file to write (atomically): may not exist yet, but must not be a folder."""
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a folder; expected a file name to write")
    return text


def output_file_path(text: str) -> Path:
    """:func:`output_file` as a ``Path``."""
    return Path(output_file(text))


def require_file(path: str | os.PathLike, expected: str) -> Path:
    """``path`` as a Path if it is an existing file, else a CaffeFormatError naming it."""
    path = Path(path)
    if not path.exists():
        raise CaffeFormatError(f"does not exist; expected {expected}", path=path)
    if path.is_dir():
        raise CaffeFormatError(f"is a folder; expected {expected}", path=path)
    return path


_NOT_WEIGHTS = {
    "prototxt": "a prototxt (text)",
    "binaryproto": "a binaryproto (a mean image)",
    "blobprotovector": "a BlobProtoVector",
    "solverstate": "a solver state (the weights are the .caffemodel saved beside it)",
}


def require_weights_file(path: str | os.PathLike, what: str = "weights") -> Path:
    """An existing caffemodel or .caffemodel.h5, judged by content as the readers do.

    Checked before any work starts (a training run, a dataset scan). Only a file that is
    clearly something else (empty, a prototxt, a mean, a solver state) is refused here; a
    damaged caffemodel goes on to the reader, which says where it breaks.
    """
    expected = "a caffemodel or .caffemodel.h5"
    path = require_file(path, f"{what}: {expected}")
    if path.stat().st_size == 0:
        raise CaffeFormatError(f"file is empty; expected {what}: {expected}", path=path)
    kind = detect(path)
    if kind in _NOT_WEIGHTS:
        raise CaffeFormatError(f"is {_NOT_WEIGHTS[kind]}, not {what}; expected {expected}",
                               path=path)
    return path


def require_dir(path: str | os.PathLike, expected: str) -> Path:
    """``path`` as a Path if it is an existing folder, else a CaffeFormatError naming it."""
    path = Path(path)
    if not path.exists():
        raise CaffeFormatError(f"does not exist; expected {expected}", path=path)
    if not path.is_dir():
        raise CaffeFormatError(f"is a file; expected a folder: {expected}", path=path)
    return path


class _SchemaOption(argparse.Action):
    """``--fork NAME`` / ``--proto FILE``: keeps the text (``args.fork`` / ``args.proto``) and
    resolves it, there and then, into ``args.schema``; an unknown fork or an unreadable
    schema file is a usage error of the verb, before any work."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        try:
            namespace.schema = get_schema(**{self.dest: values})
        except (UsageError, CaffeFormatError) as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def add_schema_options(parser: argparse.ArgumentParser) -> None:
    """``--fork NAME`` / ``--proto FILE``: the Caffe fork schema a verb reads its files with,
    resolved while the command line is parsed into ``args.schema`` (a
    :class:`~caffe_import.proto.schema.Schema`, or None when neither is given: the readers
    then choose by content)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fork", metavar="NAME", action=_SchemaOption,
                       help=f"read the net with a Caffe fork's schema: {', '.join(fork_names())} "
                            f"or {BVLC} (default: BVLC, else BVLC plus every fork whose fields "
                            "the net uses; see docs/forks.md)")
    group.add_argument("--proto", metavar="FILE", action=_SchemaOption,
                       help="read the net with your fork's own caffe.proto (compiled at run "
                            "time; needs grpcio-tools) or a descriptor set from protoc "
                            "--descriptor_set_out")
    parser.set_defaults(schema=None)


def require_net_file(path: str | os.PathLike, what: str = "net prototxt", *,
                     schema: Schema | None = None) -> ParsedNet:
    """The net ``path`` holds, read once (leniently, with ``schema`` when given) for the verb
    to build from; fails early, naming ``path``, if it does not hold a usable net definition.

    Caffe reads an empty prototxt as an empty net (and would then build nothing); here an
    empty net is a mistaken file, so say so instead of running zero layers. Fields the
    schema lacks are left to the net's build (``CaffeNet`` of the returned
    :class:`~caffe_import.io.text.ParsedNet`), which reports them with its missing layer
    types in one error.
    """
    if not os.path.exists(path):
        raise CaffeFormatError(f"does not exist; expected a {what}", path=path)
    if os.path.isdir(path):
        raise CaffeFormatError(f"is a folder: expected a {what}", path=path)
    parsed = parse_net(path, schema=schema)
    if not len(parsed.net_param.layer) and not len(parsed.net_param.input):
        raise CaffeFormatError(f"defines no layers and no inputs: expected a {what}", path=path)
    return parsed


_PYTHON_SHAPE_ADVICE = re.compile(r": (pass|give|add) [^\n]*input_shapes[^\n]*$", re.M)


def command_line_advice(message: str) -> str:
    """``message`` with the Python API's advice for a missing input shape (``input_shapes=``)
    said as the command line's ``--input NAME=SHAPE``."""
    named = re.search(r"\['([^']+)'", message)
    example = f"{named.group(1) if named else 'NAME'}={SHAPE_EXAMPLE}"
    return _PYTHON_SHAPE_ADVICE.sub(f": give the shape on the command line, --input {example} "
                                    "(once per input blob)", message)


@contextlib.contextmanager
def naming(path: str | os.PathLike | None, *, input_option: bool = False) -> Iterator[None]:
    """Name ``path`` in a CaffeFormatError raised inside that names no file itself; with
    ``input_option`` (a verb with ``--input NAME=SHAPE``), say the Python API's advice for a
    missing input shape as that option.

    Net construction and forward report the layer (unknown type, bad bottom, a missing input)
    but not the prototxt it came from; the command line knows the file, so it adds it.
    """
    try:
        yield
    except CaffeFormatError as exc:
        # subclasses (a dataset's layout error, ...) carry their own place: leave them be
        if type(exc) is not CaffeFormatError:
            raise
        text = command_line_advice(str(exc)) if input_option else str(exc)
        if path is not None and exc.path is None:
            raise CaffeFormatError(text, path=os.fspath(path)) from None
        if text == str(exc):
            raise
        said = CaffeFormatError(text)
        said.path, said.layer, said.line, said.column = exc.path, exc.layer, exc.line, exc.column
        raise said from None
