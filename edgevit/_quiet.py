"""One scoped silencer for the chatty SDKs (torch's exporters, coremltools, NNCF): no process-wide filters."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet(*loggers: str, stdout: bool = False, stderr: bool = False) -> Iterator[None]:
    """Within the block: the named loggers at ERROR, warnings ignored, stdout/stderr captured if asked."""
    found = [logging.getLogger(n) for n in loggers]
    levels = [lg.level for lg in found]
    for lg in found:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            if stdout:
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            if stderr:
                stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
            yield
    finally:
        for lg, level in zip(found, levels, strict=True):
            lg.setLevel(level)
