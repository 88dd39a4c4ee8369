"""Artifacts exported on the fly for `edgevit bench MODEL`, cached by a content hash.

The key hashes the model name, every export option, the versions that shape the artifact and the
*source* of the code that shapes it (the model's module, shared layers, rewrites, quantization, the
export pipeline and the target's backend folder), so an edited model file or backend never serves a
stale artifact and an unchanged one is exported once. Entries are verified on read (the artifact's
sha256 against its record) and rebuilt when corrupt. The cache lives in `$EDGEVIT_CACHE` or
`$XDG_CACHE_HOME/edgevit` (`~/.cache/edgevit`).
"""
from __future__ import annotations

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
    root = Path(__file__).resolve().parents[1]
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


def get_artifact(model: str, *, target: str, precision: str, img_size: int | None = None, batch: int = 1,
                 options: dict[str, Any] | None = None, root: Path | None = None) -> CachedArtifact:
    """The cached artifact for these options, exporting it (through `edgevit.export.export`) on a miss."""
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
    progress.notice(f"exporting {model} ({target}, {precision}, batch {batch}) into the cache")
    kwargs: dict[str, Any] = {"target": target, "precision": precision, "output": path, "batch": batch,
                              "img_size": img_size, **(options or {})}
    report = export(model, **kwargs)
    return CachedArtifact(path, key, False, report.record)
