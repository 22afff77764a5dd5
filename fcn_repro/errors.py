"""fcn_repro's own errors: dataset files that are not what the release's layout holds, and
images given to ``infer`` that cannot be read.

Caffe files keep :class:`caffe_import.errors.CaffeFormatError` and bad requests
:class:`caffe_import.errors.UsageError`; both CLIs print these messages on one line and exit 2.
"""
from __future__ import annotations

__all__ = ["FCNReproError", "DatasetError", "DatasetLayoutError", "ImageError"]


class FCNReproError(ValueError):
    """A file of the user's data (not a Caffe file) is not what was expected. The message
    names the file (kept as ``path``). A ``ValueError``, so callers that catch ``ValueError``
    still do."""

    def __init__(self, message: str, *, path: object = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = path


class DatasetError(FCNReproError):
    """A dataset's file is unreadable or holds what its layout does not (a .mat file without
    the variable, a label map that is not 2-D, an empty split list)."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """A dataset folder or file is missing; the message gives the path and the layout."""


class ImageError(FCNReproError):
    """An image given to ``fcn-repro infer`` that cannot be decoded."""
