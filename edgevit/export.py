"""The export pipeline, shared by every target: validate -> build -> deploy -> export to a temporary
name -> verify -> sidecar JSON -> atomic rename. A new target only registers a `Target` row (+ runner).

Nothing is left behind on failure: the exporter writes to a temporary name in the output folder and
every file carrying that name is removed unless the artifact verified.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import platform
import secrets
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import ConfigError, EdgeVitError, ExportError, UnavailableError, VerificationError

if TYPE_CHECKING:
    from torch import nn

    from edgevit.exporters.targets import Target
    from edgevit.verify import VerifyReport

RANDOM_SEED = 0
MAX_IMG_SIZE = 2048
MAX_BATCH = 1024
SIZE_MULTIPLE = 32  # every family downsamples by 32 (4 stages after a stride-4 stem)
DYNAMIC_EXAMPLE_BATCH = 2  # torch.export specialises dims of size 0/1: trace a dynamic batch with 2


class RandomWeightsWarning(UserWarning):
    """Exported without a checkpoint: the artifact is correct, its accuracy figures are meaningless."""


@dataclass
class ExportReport:
    """What `export` produced: the verified artifact, its sidecar JSON and the verification report."""

    artifact: Path
    sidecar: Path
    info: dict[str, Any]
    verification: "VerifyReport | None"
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ helpers


def file_sha256(path: Path) -> str:
    from edgevit.verify import sha256_of

    return sha256_of(path)


def state_dict_sha256(model: "nn.Module") -> str:
    """Hash of the weights (names, shapes, bytes): proves a rebuilt reference is the exported model."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def build_reference(
    name: str,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    img_size: int | None = None,
    seed: int = RANDOM_SEED,
    num_classes: int | None = None,
) -> tuple["nn.Module", bool]:
    """The train-form model in eval mode and whether its weights are random (seeded, reproducible)."""
    import torch

    from edgevit.models import create_model, model_info

    info = model_info(name)
    kwargs: dict[str, Any] = {}
    if img_size is not None and img_size != info.default_cfg.get("img_size") and _accepts(info.factory, "img_size"):
        kwargs["img_size"] = img_size
    if num_classes is not None and num_classes != info.default_cfg.get("num_classes") and _accepts(
        info.factory, "num_classes"
    ):
        kwargs["num_classes"] = num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = create_model(info.name, checkpoint=checkpoint, **kwargs)
    return model.eval(), checkpoint is None


def _versions(target: "Target") -> dict[str, str]:
    import torch

    from edgevit import __version__

    out = {"edgevit": __version__, "torch": torch.__version__, "python": platform.python_version()}
    if target.runtime:
        from edgevit.runtimes import get_runtime

        with contextlib.suppress(EdgeVitError):
            avail = get_runtime(target.runtime).probe()
            out[target.runtime] = avail.version or "unavailable"
    for mod in target.requires:
        if mod not in out:
            from importlib.metadata import PackageNotFoundError, version

            with contextlib.suppress(PackageNotFoundError):
                out[mod] = version(mod)
    return out


def _check_requires(target: "Target") -> None:
    import importlib.util

    missing = [m for m in target.requires if importlib.util.find_spec(m) is None]
    if missing:
        need = f" and {target.requirement}" if target.requirement else ""
        raise UnavailableError(
            f"target {target.key} needs {', '.join(missing)}: pip install 'edgevit[{target.extra}]'{need}"
        )
    if target.probe is not None:  # hardware the exporter needs (TensorRT builds on a CUDA GPU)
        avail = target.probe()
        if not avail.available:
            raise UnavailableError(f"target {target.key} is unavailable here: {avail.reason}")


def _validate(
    target: "Target", *, img_size: int, batch: int, dynamic_batch: bool, opset: int | None,
    calib_method: str, preset: str | None, calib_samples: int | None,
) -> None:
    if not isinstance(img_size, int) or img_size < SIZE_MULTIPLE or img_size > MAX_IMG_SIZE or img_size % SIZE_MULTIPLE:
        raise ConfigError(
            f"invalid --img-size {img_size}: use a multiple of {SIZE_MULTIPLE} between {SIZE_MULTIPLE} and {MAX_IMG_SIZE}"
        )
    if batch < 1 or batch > MAX_BATCH:
        raise ConfigError(f"invalid --batch {batch}: use 1..{MAX_BATCH}")
    if dynamic_batch and batch != 1:
        raise ConfigError("use either --batch N or --dynamic-batch, not both")
    if dynamic_batch and not target.dynamic_batch:
        raise ConfigError(f"target {target.key} does not support a dynamic batch; use --batch N")
    if opset is not None and not 7 <= opset <= 30:
        raise ConfigError(f"invalid --opset {opset}: use 7..30")
    from edgevit.quantize.onnx_static import CALIB_METHODS

    if calib_method not in CALIB_METHODS:
        raise ConfigError(f"unknown --calib-method {calib_method!r}; choose one of: {', '.join(CALIB_METHODS)}")
    if preset is not None and preset not in target.presets:
        offered = ", ".join(target.presets) or "none"
        raise ConfigError(f"unknown --preset {preset!r} for target {target.key}; it offers: {offered}")
    if calib_samples is not None and calib_samples < 1:
        raise ConfigError(f"invalid --calib-samples {calib_samples}: use at least 1")


def _resolve_output(output: str | os.PathLike[str] | None, default_name: str, suffix: str) -> Path:
    """The final artifact path; its folder is created and proven writable before any work starts."""
    if output is None:
        path = Path.cwd() / default_name
    else:
        path = Path(output).expanduser()
        # an existing folder named like the artifact (NAME.mlpackage/, NAME.ncnn/) is the artifact itself;
        # a trailing separator, or a new name without any suffix, is a folder to put the artifact in
        folder = str(output).endswith(("/", os.sep)) or (not path.exists() and not path.suffix)
        if folder or (path.is_dir() and not path.name.lower().endswith(suffix)):
            path = path / default_name
    if not path.name.lower().endswith(suffix):
        raise ConfigError(f"output {path.name!r} must end with {suffix}")
    if path.exists() and path.is_dir() and suffix and not suffix.endswith(("package", ".ncnn", ".openvino")):
        raise ConfigError(f"output {path} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".edgevit-write-test-{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {path.parent}: {exc.strerror or exc}") from None
    return path


class _TempArtifact:
    """A temporary name beside the final artifact; `commit()` renames, `cleanup()` removes every file
    that carries the name (the artifact, its sidecar and anything an exporter wrote next to it)."""

    def __init__(self, final: Path, suffix: str) -> None:
        self.final = final
        stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
        self.prefix = f".{stem}.edgevit-tmp-{secrets.token_hex(4)}"
        self.path = final.parent / f"{self.prefix}{suffix}"

    def commit(self, sidecar_tmp: Path, sidecar_final: Path) -> None:
        if self.final.is_dir():
            shutil.rmtree(self.final)
        os.replace(self.path, self.final)
        os.replace(sidecar_tmp, sidecar_final)

    def cleanup(self) -> None:
        for p in self.final.parent.glob(f"{self.prefix}*"):
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


# ------------------------------------------------------------------------------------------ pipeline


def export(
    model: str,
    *,
    target: str = "onnx",
    precision: str | None = None,
    output: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    img_size: int | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int | None = None,
    calib_data: str | os.PathLike[str] | None = None,
    calib_samples: int | None = None,
    calib_method: str = "minmax",
    preset: str | None = None,
    simplify: bool = True,
    verify: bool = True,
    options: dict[str, Any] | None = None,
    threads: int | None = 2,
) -> ExportReport:
    """Export a registered model to a verified artifact plus `<artifact>.json` sidecar.

    Without `checkpoint` the weights are random (seeded) and a RandomWeightsWarning says that accuracy
    figures are meaningless. int8 calibrates on `calib_data` (a folder, recursively) or on the photos
    scikit-image ships. Raises EdgeVitError subclasses for anything a user can fix.
    """
    import numpy as np
    import torch

    from edgevit.exporters.targets import ExportRequest, check_precision, get_target
    from edgevit.models import model_info
    from edgevit.quantize.data import embedded_eval_images, load_calibration
    from edgevit.rewrite import deploy
    from edgevit.verify import sidecar_path
    from edgevit.verify import verify as run_verify

    tgt = get_target(target)
    precision = precision or tgt.default_precision
    check_precision(tgt, precision)
    info = model_info(model)  # UnknownModelError with did-you-mean
    cfg = info.default_cfg
    size = int(cfg["img_size"]) if img_size is None else img_size
    _validate(tgt, img_size=size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
              calib_method=calib_method, preset=preset, calib_samples=calib_samples)
    _check_requires(tgt)
    if checkpoint is not None and not Path(checkpoint).is_file():
        from edgevit.errors import CheckpointError

        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    final = _resolve_output(output, f"{info.name}_{precision}{tgt.suffix}", tgt.suffix)
    mean, std = tuple(cfg["mean"]), tuple(cfg["std"])

    # Images first: a bad calibration folder should fail in a second, not after the export.
    calib = load_calibration(calib_data, img_size=size, mean=mean, std=std, samples=calib_samples,
                             for_calibration=precision == "int8")

    notes: list[str] = []
    ref_model, random_weights = build_reference(info.name, checkpoint=checkpoint, img_size=size)
    if random_weights:
        msg = (f"{info.name}: no --checkpoint, exporting RANDOM weights (seed {RANDOM_SEED}); the artifact "
               "is structurally correct but every accuracy figure from it is meaningless")
        warnings.warn(msg, RandomWeightsWarning, stacklevel=2)
        notes.append(msg)
    deployed = deploy(ref_model)
    example_batch = DYNAMIC_EXAMPLE_BATCH if dynamic_batch else batch
    example = torch.from_numpy(np.ascontiguousarray(
        np.resize(embedded_eval_images(size, mean, std), (example_batch, 3, size, size))))
    try:
        with torch.no_grad():
            logits = deployed(example)
    except Exception as exc:
        raise ConfigError(
            f"{info.name} does not run at img_size {size}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    num_classes = int(logits.shape[-1])

    tmp = _TempArtifact(final, tgt.suffix)
    sidecar_tmp = sidecar_path(tmp.path)
    try:
        req = ExportRequest(
            model_name=info.name, model=deployed, example=example, output=tmp.path, precision=precision,
            img_size=size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
            calib=calib if precision == "int8" else None, calib_method=calib_method, preset=preset,
            simplify=simplify, mean=mean, std=std, options=dict(options or {}), threads=threads,
        )
        result = tgt.exporter(req)
        if not Path(result.artifact).exists():
            raise ExportError(f"the {tgt.key} exporter reported success but wrote no artifact")
        if Path(result.artifact) != tmp.path:  # exporters must write where they are told
            raise ExportError(f"the {tgt.key} exporter wrote {result.artifact}, not {tmp.path}")
        side: dict[str, Any] = {
            "artifact": final.name,
            "model": info.name,
            "family": info.family,
            "target": tgt.key,
            "precision": precision,
            "img_size": size,
            "batch": batch,
            "dynamic_batch": dynamic_batch,
            "num_classes": num_classes,
            "input": {"layout": "NCHW", "color": "RGB", "scale": "pixels / 255", "mean": list(mean),
                      "std": list(std), "resize": "shorter side to img_size / 0.875, centre crop"},
            "opset": result.metadata.get("opset", opset),
            "versions": _versions(tgt),
            "sha256": file_sha256(tmp.path),
            "size_mb": round(sum(f.stat().st_size for f in ([tmp.path] if tmp.path.is_file() else tmp.path.rglob("*")) if f.is_file()) / 1e6, 3),
            "checkpoint": {
                "path": "random" if random_weights else str(Path(checkpoint).resolve()),  # type: ignore[arg-type]
                "sha256": None if random_weights else file_sha256(Path(checkpoint)),  # type: ignore[arg-type]
                "seed": RANDOM_SEED if random_weights else None,
                "weights_sha256": state_dict_sha256(ref_model),
            },
            "calibration": {**calib.describe(), "method": calib_method} if precision == "int8" else None,
            "export": result.metadata,
            "warnings": notes,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgevit") else None,
        }
        _write_json(sidecar_tmp, side)
        report = None
        if verify:
            images = np.concatenate([calib.holdout, embedded_eval_images(size, mean, std)])
            data_info = {"holdout": {"source": calib.source, "images": int(len(calib.holdout))},
                         "embedded_photos": int(len(images) - len(calib.holdout)), "images": int(len(images))}
            report = run_verify(tmp.path, reference_model=ref_model, images=images, data_info=data_info,
                                precision=precision, target=tgt.key, threads=threads)
            report.artifact = str(final)  # reports name the artifact the user gets, not the temp name
            side["verification"] = report.as_dict()
            if report.executed and not report.passed:
                raise VerificationError(
                    f"{final.name} does not match the PyTorch reference ({precision}): {report.reason}"
                )
            if not report.executed:
                notes.append(f"not verified: {report.reason}")
        else:
            side["verification"] = {"executed": False, "reason": "skipped (verify=False)"}
        _write_json(sidecar_tmp, side)
        tmp.commit(sidecar_tmp, sidecar_path(final))
    except BaseException:
        tmp.cleanup()
        raise
    return ExportReport(artifact=final, sidecar=sidecar_path(final), info=side, verification=report,
                        warnings=notes)
