"""Exceptions a user can cause, each carrying a message fit to show as-is.

The CLI prints ``str(exc)`` as one line and the GUI shows it in a dialog, so messages name the
file or model involved and say what to do next; tracebacks are for bugs only.
"""

from __future__ import annotations


class VectorStudioError(Exception):
    """Base class of every error the user can cause and fix."""


class ModelError(VectorStudioError):
    """A model file or folder is missing, invalid, or cannot run."""


class ModelNotInstalledError(ModelError):
    """A model is known but its files are not on disk."""


class DownloadError(VectorStudioError):
    """A download failed (network, server, verification)."""


class OfflineError(DownloadError):
    """The model hub could not be reached in time."""


class LibraryError(VectorStudioError):
    """The library database or index cannot be used as asked."""


class LibraryLockedError(LibraryError):
    """Another process is writing to the same library."""


class LibraryReadOnlyError(LibraryLockedError):
    """The library folder cannot be written (read-only file system or no permission).

    A subclass of :class:`LibraryLockedError` because the remedy is the same: open it read-only.
    """


class SpaceMismatchError(LibraryError):
    """A query model does not match the embedding space the library was built with."""


class ImageError(VectorStudioError):
    """An image file cannot be read or is not acceptable (bomb, unsupported format...)."""


class Cancelled(VectorStudioError):  # noqa: N818 - reads naturally at raise sites
    """The user cancelled a long-running operation; work done so far is kept."""
