"""Artifacts exported on the fly for `edgevit bench MODEL`, cached by a content hash.

The key hashes the model name, every export option, the edgevit and torch versions and the *source*
of the code that shapes the artifact (the model's module, shared layers, rewrites, the target's exporter,
quantization, the export pipeline),
so an edited model file or exporter never serves a stale artifact, and an unchanged one is exported
once. The cache lives in `$EDGEVIT_CACHE` or `~/.cache/edgevit`; entries are written to a temporary
name and renamed, so concurrent benches at worst export twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError

# Parts of the package whose source changes what any exported artifact contains; the model's own
# module and its target's exporter module are added per key.
_SOURCE_PARTS = ("models/_registry.py", "models/layers.py", "rewrite", "quantize", "export.py",
                 "exporters/targets.py")


def cache_dir() -> Path:
    """$EDGEVIT_CACHE, else $XDG_CACHE_HOME/edgevit, else ~/.cache/edgevit."""
    if env := os.environ.get("EDGEVIT_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgevit"


def _module_file(module: str) -> str | None:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return spec.origin if spec and spec.origin else None


@lru_cache(maxsize=64)
def source_digest(model: str = "", target: str = "") -> str:
    """sha256 over the source that shapes this artifact: the shared pipeline parts, the model's own
    module and the target's exporter module (path + bytes, stable order). Narrow on purpose: an edit
    to another family or target does not throw away this model's cached artifacts."""
    root = Path(__file__).resolve().parents[1]
    files: list[Path] = []
    for part in _SOURCE_PARTS:
        p = root / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else ([p] if p.exists() else [])
    extra = []
    if model:
        from edgevit.models import model_info

        extra.append(_module_file(model_info(model).factory.__module__))
    if target:
        from edgevit.exporters.targets import get_target

        module = get_target(target).exporter.__module__
        origin = _module_file(module)
        extra.append(origin)
        if origin and module.startswith("edgevit.backends."):  # the whole folder: its quantizer shapes it too
            extra += [str(f) for f in sorted(Path(origin).parent.glob("*.py")) if str(f) != origin]
    files += [Path(f) for f in extra if f and Path(f).exists()]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.resolve().relative_to(root)).encode() if f.resolve().is_relative_to(root) else f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("edgevit", "torch", "onnx", "onnxruntime"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = ""
    return out


def cache_key(model: str, *, target: str, precision: str, img_size: int | None, batch: int,
              options: dict[str, Any] | None = None) -> str:
    payload = {
        "model": model, "target": target, "precision": precision, "img_size": img_size, "batch": batch,
        "options": options or {}, "versions": _versions(), "source": source_digest(model, target),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CachedArtifact:
    path: Path
    key: str
    hit: bool
    info: dict[str, Any]  # params, macs, img_size, export facts


def artifact_size(path: Path) -> int:
    """Bytes of an artifact file, or of every file in an artifact directory (.mlpackage)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def model_counts(model: str, img_size: int | None) -> dict[str, Any]:
    """Params and MACs of a registry model (MACs when the counter is there), for tables and plots."""
    from edgevit.models import create_model, model_info

    info = model_info(model)
    size = img_size or int(info.default_cfg.get("img_size", 224))
    net = create_model(model).eval()
    out: dict[str, Any] = {"img_size": size, "params": sum(p.numel() for p in net.parameters())}
    try:
        from edgevit.models._macs import count_macs
    except ImportError:
        return out
    out["macs"] = int(count_macs(net, size))
    return out


def get_artifact(model: str, *, target: str, precision: str, img_size: int | None = None, batch: int = 1,
                 options: dict[str, Any] | None = None, root: Path | None = None, log: Any = None) -> CachedArtifact:
    """The cached artifact for these options, exporting it (through `edgevit.export.export`) on a miss."""
    from edgevit.exporters import get_target

    tgt = get_target(target)
    key = cache_key(model, target=target, precision=precision, img_size=img_size, batch=batch, options=options)
    folder = (root or cache_dir()) / "artifacts"
    stem = f"{model}-{target}-{precision}-b{batch}" + (f"-{img_size}px" if img_size else "")
    path = folder / f"{stem}-{key[:12]}{tgt.suffix}"
    info_path = path.with_name(path.name + ".bench.json")
    if path.exists() and info_path.exists():
        return CachedArtifact(path, key, True, json.loads(info_path.read_text()))
    try:
        from edgevit.export import export
    except ImportError:
        raise ConfigError(
            "edgevit.export is not available in this checkout: bench an artifact file instead of a model name"
        ) from None
    if log:
        log(f"exporting {model} ({target}, {precision}, batch {batch}) into the cache")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{os.getpid()}-{path.name}"
    kwargs: dict[str, Any] = {"target": target, "precision": precision, "output": tmp, "batch": batch}
    if img_size:
        kwargs["img_size"] = img_size
    if options:
        kwargs.update(options)
    try:
        report = export(model, **kwargs)
        produced = Path(getattr(report, "artifact", None) or getattr(report, "output", None) or tmp)
        info = model_counts(model, img_size) | {"cache_key": key, "export": _report_facts(report)}
        side_src = Path(getattr(report, "sidecar", None) or produced.with_name(produced.name + ".json"))
        if produced != path:
            if path.exists():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            produced.replace(path)
        if side_src.exists():
            side_src.replace(path.with_name(path.name + ".json"))
        tmp_info = info_path.with_name(info_path.name + f".{os.getpid()}")
        tmp_info.write_text(json.dumps(info, indent=1, default=str))
        tmp_info.replace(info_path)
    finally:
        for leftover in folder.glob(f".tmp-{os.getpid()}-*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
    return CachedArtifact(path, key, False, info)


def _report_facts(report: Any) -> dict[str, Any]:
    """A few facts from the ExportReport, whatever its exact shape."""
    info = getattr(report, "info", None)
    if isinstance(info, dict):
        keep = ("precision", "target", "batch", "img_size", "opset", "exporter", "sha256", "verified")
        return {k: info[k] for k in keep if k in info} | {"warnings": list(getattr(report, "warnings", []))}
    for attr in ("as_dict", "to_dict"):
        fn = getattr(report, attr, None)
        if callable(fn):
            try:
                d = fn()
                return {k: d[k] for k in ("precision", "target", "verify", "verified", "seconds") if k in d}
            except Exception:  # facts are a nicety; never fail a benchmark over them
                return {}
    return {}


def read_sidecar(artifact: Path) -> dict[str, Any]:
    """The export sidecar `<artifact>.json` and our own `<artifact>.bench.json`, merged (empty if none)."""
    out: dict[str, Any] = {}
    for side in (artifact.with_name(artifact.name + ".json"), artifact.with_name(artifact.name + ".bench.json")):
        if side.exists():
            try:
                data = json.loads(side.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(data, dict):
                out |= data
    return out
