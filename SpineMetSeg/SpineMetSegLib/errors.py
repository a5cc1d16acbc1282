"""Errors the user can act on.

Every error the core raises for bad input, a bad model or a failed download derives from
``SpineMetSegError``. The command line prints its message (no traceback) and exits with
``EXIT_USER_ERROR``; the Slicer logic shows it in an error dialog.
"""

EXIT_USER_ERROR = 2
EXIT_UNEXPECTED = 1  # a bug: the traceback is in a log file (see errorlog)
EXIT_CANCELLED = 130


class SpineMetSegError(Exception):
    """An error with a message written for the user: what is wrong and what to do."""


class ImageError(SpineMetSegError):
    """An input image that cannot be read or used (unreadable, 2D, 4D, NaN, empty, constant, ...)."""


class GeometryError(SpineMetSegError):
    """Images whose grids cannot be brought together (no overlap, different dimension)."""


class ModelError(SpineMetSegError):
    """A model card, catalog or model file that is missing, invalid, corrupt or unsafe."""


class DownloadError(SpineMetSegError):
    """A download that failed (network, HTTP status, size or checksum)."""


class CancelledError(SpineMetSegError):
    """A run the user cancelled; ``outcome`` says what was left (the command line prints it)."""

    def __init__(self, message: str = "cancelled", outcome: str = "nothing was written"):
        super().__init__(message)
        self.outcome = outcome
