"""User-facing errors: the CLI prints these as one red line and exits non-zero; bugs stay ordinary exceptions."""
from __future__ import annotations


class EdgeVitError(Exception):
    """Base of every error a user can cause and fix; `exit_code` is what the CLI returns."""

    exit_code: int = 1


class UnknownModelError(EdgeVitError, KeyError):
    """A model name that is not registered (the message carries a did-you-mean suggestion)."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(EdgeVitError):
    """A checkpoint that cannot be read, or whose keys/shapes do not match the model."""

    exit_code = 2


class ConfigError(EdgeVitError):
    """Invalid options or files: device profiles, suites, sizes, precisions."""

    exit_code = 2


class ExportError(EdgeVitError):
    """An export that failed or produced an artifact that did not verify."""


class UnavailableError(EdgeVitError):
    """A target or runtime whose package or hardware is missing here; the message names the fix."""


class CalibrationError(EdgeVitError):
    """Calibration data that is missing, empty, unreadable or too small."""

    exit_code = 2


class VerificationError(EdgeVitError):
    """An artifact whose outputs do not match the PyTorch reference within its bound."""


class OutputError(EdgeVitError):
    """A file edgevit was asked to write cannot be written (full disk, read-only folder, bad path)."""


class BenchFailure(EdgeVitError):
    """Some benchmark cases failed; the others were measured and written."""


class RegressionError(EdgeVitError):
    """The latency gate found a regression, or could not judge what it was asked to."""


class RemoteError(EdgeVitError):
    """A board that cannot be reached over SSH, refuses the key, lacks what a case needs, or whose
    connection dropped; the message names the board and the fix."""


class Int8NotFasterError(ExportError):
    """int8 measured slower than fp32 (or no node faster in int8) on the target runtime: the export
    refuses to ship it unless forced; the message gives the measured ratio and names the flag."""
