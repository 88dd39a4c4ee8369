"""The self-contained zipapp pushed to a board: the worker, the board entry and every runtime runner.

A board needs python3, numpy and a runtime wheel, never torch or an edgevit checkout. The bundle holds
the edgevit modules those entry points can import, found by walking `import edgevit...` statements
(anywhere in a file, lazy ones included) from the roots: `bench.board`, `bench.worker` and each
registered runtime's runner module (so a new runtime is bundled by registering it). Only edgevit's
own pure-Python files go in; torch, onnx and friends are imported lazily by export code that never runs
there (tests/test_remote.py runs the bundle with torch blocked to keep that true).

The bundle is named by the sha256 of its contents, built once into the local cache and pushed once
into the board's cache: an unchanged edgevit pushes nothing on the next run.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import os
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # .../edgevit
ROOTS = ("edgevit.bench.board", "edgevit.bench.worker")
MAIN = (
    "import sys\n"
    "from edgevit.bench.board import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
NAME = "edgevit-board.pyz"


@dataclass(frozen=True)
class Bundle:
    path: Path  # the .pyz in the local cache
    sha256: str
    modules: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for p in (PACKAGE / rel / "__init__.py", (PACKAGE / rel).with_suffix(".py")):
        if p.is_file():
            return p
    return None


def _top_level(tree: ast.Module) -> list[ast.AST]:
    """The statements that run when a module is imported (not function bodies, not TYPE_CHECKING blocks)."""
    out: list[ast.AST] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        out += list(ast.walk(node)) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
            else []
    return out


def _imports(path: Path, *, deep: bool = True) -> set[str]:
    """Every edgevit module a file names in an import statement (absolute imports; the package uses no
    relative ones), including `from edgevit.x import y` where y may itself be a module. `deep` follows
    imports inside functions too (the entry modules, whose functions run on the board); otherwise only
    what importing the module runs (a library module's lazy imports serve the workstation side)."""
    out: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in (ast.walk(tree) if deep else _top_level(tree)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "edgevit"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "edgevit":
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def roots() -> list[str]:
    """The bundle's entry modules: the board entry, the worker and every registered runner."""
    from edgevit.backends import runtimes

    return sorted({*ROOTS, *(spec.runner.__module__ for spec in runtimes().values())})


_PARSE_LOCK = threading.Lock()  # CPython 3.11's ast is not safe to use from several threads (a fleet opens
# its boards in parallel): "SystemError: AST constructor recursion depth mismatch"


@functools.lru_cache(maxsize=4)
def _closure_cached(start: tuple[str, ...], stamp: tuple[tuple[str, float], ...]) -> dict[str, Path]:
    with _PARSE_LOCK:
        return _closure(list(start))


def closure(start: list[str]) -> dict[str, Path]:
    """Module name -> file for `start` and every edgevit module they import (computed once per source state)."""
    stamp = tuple(sorted((str(f), f.stat().st_mtime) for f in PACKAGE.rglob("*.py")))
    return dict(_closure_cached(tuple(start), stamp))


def _closure(start: list[str]) -> dict[str, Path]:
    """Module name -> file for `start` and every edgevit module they import, with their packages."""
    found: dict[str, Path] = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            sub = ".".join(parts[:i])
            f = _module_file(sub) if sub != "edgevit" else PACKAGE / "__init__.py"
            if f is not None and sub not in found:
                found[sub] = f
                todo.extend(_imports(f, deep=sub in start))
    return dict(sorted(found.items()))


def _arcname(path: Path) -> str:
    return "edgevit/" + path.relative_to(PACKAGE).as_posix()


def content_hash(files: dict[str, Path]) -> str:
    h = hashlib.sha256(MAIN.encode())
    for f in sorted(files.values()):
        h.update(_arcname(f).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build_bundle(cache: Path | None = None) -> Bundle:
    """The bundle of this edgevit, from the local cache or built into it (temporary name + rename)."""
    from edgevit.cache import cache_dir

    files = closure(roots())
    digest = content_hash(files)
    out_dir = (cache or cache_dir()) / "bundles"
    out = out_dir / f"{digest[:16]}-{NAME}"
    if not out.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", dir=out_dir)
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(zipfile.ZipInfo("__main__.py", (1980, 1, 1, 0, 0, 0)), MAIN)
                for f in sorted(files.values()):
                    info = zipfile.ZipInfo(_arcname(f), (1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, f.read_bytes())
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return Bundle(out, digest, tuple(files))
