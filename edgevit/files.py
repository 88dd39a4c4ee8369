"""Every file edgevit writes goes through here: a hidden temporary name in the same folder, fsync,
then one rename, so a reader never sees half a file and a failed write leaves the old file intact.

Artifacts that are directories (`.mlpackage`, `.ncnn`) are built under a temporary directory name and
swapped in by `replace_path`. Write failures (a full disk, a read-only folder) are user-facing
`OutputError`s naming the file, never tracebacks.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgevit.errors import OutputError

TMP_MARK = ".edgevit-tmp-"


def temp_sibling(final: Path, suffix: str = "") -> Path:
    """A hidden, unique name beside `final` (same filesystem, so the rename is atomic)."""
    final = Path(final)
    return final.parent / f".{final.name}{TMP_MARK}{secrets.token_hex(4)}{suffix}"


def _write_error(path: Path, exc: OSError) -> OutputError:
    why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return OutputError(f"cannot write {path}: {why}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path` atomically (temporary sibling, fsync, rename); returns the path."""
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(final.parent, exc) from None
    tmp = temp_sibling(final)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(final, exc) from None
    _fsync_dir(final.parent)
    return final


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json(data: Any, indent: int | None = 2) -> str:
    """The one JSON encoding edgevit writes (paths as strings, numpy values as numbers)."""
    return json.dumps(data, indent=indent, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, to_json(data, indent))


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree; missing is fine."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def replace_path(tmp: Path, final: Path) -> None:
    """Put `tmp` (a file or a directory) at `final`, replacing what was there."""
    try:
        if final.is_dir() and not final.is_symlink():
            old = temp_sibling(final, ".old")
            os.replace(final, old)
            os.replace(tmp, final)
            remove_path(old)
        else:
            os.replace(tmp, final)
    except OSError as exc:
        raise _write_error(final, exc) from None
    _fsync_dir(final.parent)


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written there, before any long work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".edgevit-write-test-{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def run_tempdir() -> Iterator[Path]:
    """One folder for every temporary file of this run (this process's `tempfile` calls and, through
    TMPDIR, its subprocesses'), removed on any exit: errors, Ctrl-C and SIGTERM (raised as an interrupt)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="edgevit-run-"))
    before = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = before[0]
        if before[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before[1]
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write a file or directory into; on success it replaces
    `final`, on any failure (or interrupt) it is removed and `final` is untouched."""
    check_writable(final.parent)
    tmp = temp_sibling(final, "".join(final.suffixes[-1:]))
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written for {final}")
        replace_path(tmp, final)
    finally:
        remove_path(tmp)
