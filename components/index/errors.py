"""Errors of the region index (imported by the index, its parts and its persistence alike)."""

from __future__ import annotations


class IndexError_(RuntimeError):
    """Base class of index errors (the trailing underscore avoids shadowing the builtin)."""


class FingerprintMismatchError(IndexError_):
    """The index was built by a different encoder than the one that will query it."""


class IndexFormatError(IndexError_):
    """The folder is not a (complete) region index."""
