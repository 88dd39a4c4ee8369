"""Artifacts exported on the fly for `edgevit bench MODEL`, cached by a content hash, and an index of the
artifacts `edgevit export` wrote with the same inputs, so bench reuses them instead of exporting again.

The key hashes the model name, every export option, the versions that shape the artifact and the
*source* of the code that shapes it (the model's module, shared layers, rewrites, quantization, the
export pipeline and the target's backend folder), so an edited model file or backend never serves a
stale artifact and an unchanged one is exported once. Entries are verified on read (the artifact's
sha256 against its record) and rebuilt when corrupt. The cache lives in `$EDGEVIT_CACHE` or
`$XDG_CACHE_HOME/edgevit` (`~/.cache/edgevit`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgevit import progress
from edgevit.artifact import ArtifactRecord, artifact_sha256, read_record
from edgevit.errors import ConfigError, EdgeVitError
from edgevit.files import check_writable, remove_path

# Parts of the package whose source changes what any exported artifact contains; the model's own
# module and its target's backend folder are added per key.
_SOURCE_PARTS = ("models/_registry.py", "models/_build.py", "models/layers.py", "rewrite", "quantize",
                 "export.py", "artifact.py", "backends/base.py", "backends/_registry.py")


def cache_dir() -> Path:
    """$EDGEVIT_CACHE, else $XDG_CACHE_HOME/edgevit, else ~/.cache/edgevit."""
    if env := os.environ.get("EDGEVIT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgevit"


def usable_cache_dir(root: Path | None = None) -> Path:
    """The cache folder, created and proven writable; a one-line error naming the variable if not."""
    folder = root or cache_dir()
    try:
        check_writable(folder)
    except EdgeVitError as exc:
        where = "EDGEVIT_CACHE" if os.environ.get("EDGEVIT_CACHE") else "the cache folder"
        raise ConfigError(f"{where} is not usable ({exc}); set EDGEVIT_CACHE to a writable folder") from None
    return folder


def _module_dir(module: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return Path(spec.origin).parent if spec and spec.origin else None


@lru_cache(maxsize=64)
def source_digest(model: str = "", target: str = "") -> str:
    """sha256 over the source that shapes this artifact: the shared pipeline parts, the model's own
    module and the target's backend folder (path + bytes, stable order). Narrow on purpose: an edit to
    another family or target does not throw away this model's cached artifacts."""
    root = Path(__file__).resolve().parent  # the edgevit package
    files: list[Path] = []
    for part in _SOURCE_PARTS:
        p = root / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else ([p] if p.exists() else [])
    if model:
        from edgevit.models import model_info

        spec = _module_file(model_info(model).factory.__module__)
        files += [spec] if spec else []
    if target:
        from edgevit.backends import get_backend

        folder = _module_dir(get_backend(target).export.__module__)
        files += sorted(folder.rglob("*.py")) if folder else []
    h = hashlib.sha256()
    for f in files:
        rel = f.resolve().relative_to(root) if f.resolve().is_relative_to(root) else Path(f.name)
        h.update(str(rel).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _module_file(module: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return Path(spec.origin) if spec and spec.origin else None


def _versions(target: str) -> dict[str, str]:
    from edgevit.backends import get_backend
    from edgevit.versions import CORE_DISTS, package_versions

    b = get_backend(target)
    return package_versions((*CORE_DISTS, *b.requires, *(b.runtime.dists if b.runtime else ())), python=False)


def cache_key(model: str, *, target: str, precision: str, img_size: int | None, batch: int,
              options: dict[str, Any] | None = None) -> str:
    """What makes two exports the same artifact (img_size None means the model's own)."""
    from edgevit.models import model_info

    img_size = img_size or int(model_info(model).default_cfg["img_size"])
    payload = {
        "model": model, "target": target, "precision": precision, "img_size": img_size, "batch": batch,
        "options": options or {}, "versions": _versions(target), "source": source_digest(model, target),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CachedArtifact:
    path: Path
    key: str
    hit: bool
    record: ArtifactRecord


def _valid_entry(path: Path) -> ArtifactRecord | None:
    """The entry's record when the artifact is whole (its sha256 matches the record), else None."""
    if not path.exists():
        return None
    try:
        rec = read_record(path)
    except EdgeVitError:
        rec = None
    if rec is not None and rec.sha256 and artifact_sha256(path) == rec.sha256:
        return rec
    progress.notice(f"cache entry {path.name} is corrupt or incomplete: exporting it again")
    remove_path(path)
    remove_path(path.with_name(path.name + ".json"))
    return None


def _index_file(key: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "index" / f"{key}.json"


def remember(key: str, artifact: Path, root: Path | None = None) -> None:
    """Note that `artifact` (written by `edgevit export`) is the artifact for `key`; failures are silent
    (the index only saves work: without it bench exports again)."""
    from edgevit.files import atomic_write_json

    with contextlib.suppress(EdgeVitError, OSError):
        atomic_write_json(_index_file(key, root), {"path": str(Path(artifact).resolve())})


def _indexed(key: str, root: Path | None) -> tuple[Path, ArtifactRecord] | None:
    """The artifact an export left for `key`, when it is still there and whole."""
    index = _index_file(key, root)
    try:
        path = Path(json.loads(index.read_text())["path"])
        rec = read_record(path)
    except (OSError, ValueError, KeyError, TypeError, EdgeVitError):
        return None
    if rec is None or not rec.sha256 or not path.exists() or artifact_sha256(path) != rec.sha256:
        index.unlink(missing_ok=True)
        return None
    return path, rec


def get_artifact(model: str, *, target: str, precision: str, img_size: int | None = None, batch: int = 1,
                 options: dict[str, Any] | None = None, root: Path | None = None) -> CachedArtifact:
    """The artifact for these options: the cached one, one `edgevit export` wrote with the same inputs,
    or a fresh export (through `edgevit.export.export`) into the cache."""
    from edgevit.backends import get_backend
    from edgevit.export import export

    suffix = get_backend(target).suffix
    key = cache_key(model, target=target, precision=precision, img_size=img_size, batch=batch, options=options)
    folder = usable_cache_dir(root) / "artifacts"
    stem = f"{model}-{target}-{precision}-b{batch}" + (f"-{img_size}px" if img_size else "")
    path = folder / f"{stem}-{key[:12]}{suffix}"
    rec = _valid_entry(path)
    if rec is not None:
        return CachedArtifact(path, key, True, rec)
    if not options and (found := _indexed(key, root)) is not None:
        progress.notice(f"reusing {found[0]} (exported earlier with the same inputs)")
        return CachedArtifact(found[0], key, True, found[1])
    progress.notice(f"exporting {model} ({target}, {precision}, batch {batch}) into the cache")
    kwargs: dict[str, Any] = {"target": target, "precision": precision, "output": path, "batch": batch,
                              "img_size": img_size, **(options or {})}
    report = export(model, **kwargs)
    return CachedArtifact(path, key, False, report.record)
