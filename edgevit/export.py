"""The export pipeline, shared by every target: validate -> build -> deploy -> export to a temporary
name -> verify -> artifact record (sidecar) -> rename. A new target only registers a Backend row.

Nothing is left behind on failure: the exporter writes to a hidden temporary name in the output folder,
and that name (with anything the exporter put beside it) is removed unless the artifact verified.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit import progress
from edgevit.artifact import (
    ArtifactRecord,
    MixedPrecision,
    Preprocessing,
    Weights,
    artifact_sha256,
    artifact_size,
    sidecar_path,
    write_record,
)
from edgevit.errors import CheckpointError, ConfigError, EdgeVitError, ExportError, VerificationError
from edgevit.files import check_writable, remove_path, replace_path, temp_sibling

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from edgevit.backends import Backend
    from edgevit.models import ModelInfo
    from edgevit.quantize.data import CalibrationSet
    from edgevit.verify import VerifyReport

MAX_IMG_SIZE = 2048
MAX_BATCH = 1024
DEFAULT_THREADS = 2  # verification, its latency figure and int8's measured selection
SIZE_MULTIPLE = 32  # every family downsamples by 32 (4 stages after a stride-4 stem)
DYNAMIC_EXAMPLE_BATCH = 2  # torch.export specialises dims of size 0/1: trace a dynamic batch with 2


class RandomWeightsWarning(UserWarning):
    """Exported without a checkpoint: seeded weights, so fidelity figures hold and accuracy ones do not."""


@dataclass
class ExportReport:
    """What `export` produced: the verified artifact, its record (sidecar) and the verification report."""

    artifact: Path
    sidecar: Path
    record: ArtifactRecord
    verification: "VerifyReport | None"
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ checks


def _validate(backend: "Backend", *, img_size: int, batch: int, dynamic_batch: bool, opset: int | None,
              calib_method: str | None, preset: str | None, calib_samples: int | None, precision: str,
              threads: int | None) -> None:
    if not isinstance(img_size, int) or img_size < SIZE_MULTIPLE or img_size > MAX_IMG_SIZE or img_size % SIZE_MULTIPLE:
        raise ConfigError(
            f"invalid --img-size {img_size}: use a multiple of {SIZE_MULTIPLE} between {SIZE_MULTIPLE} and {MAX_IMG_SIZE}"
        )
    if batch < 1 or batch > MAX_BATCH:
        raise ConfigError(f"invalid --batch {batch}: use 1..{MAX_BATCH}")
    if dynamic_batch and batch != 1:
        raise ConfigError("use either --batch N or --dynamic-batch, not both")
    if dynamic_batch and not backend.dynamic_batch:
        raise ConfigError(f"target {backend.key} does not support a dynamic batch; use --batch N")
    if opset is not None:
        if backend.opsets is None:
            raise ConfigError(f"target {backend.key} has no ONNX opset to choose")
        lo, hi = backend.opsets
        if not lo <= opset <= hi:
            raise ConfigError(f"invalid --opset {opset}: target {backend.key} exports opsets {lo}..{hi}")
    if calib_method is not None and calib_method not in backend.calib_methods:
        offered = ", ".join(backend.calib_methods) or "none (no calibration)"
        raise ConfigError(f"--calib-method {calib_method} is not offered by target {backend.key}: {offered}")
    if preset is not None and preset not in backend.presets:
        offered = ", ".join(backend.presets) or "none"
        raise ConfigError(f"unknown --preset {preset!r} for target {backend.key}; it offers: {offered}")
    if calib_samples is not None and calib_samples < 1:
        raise ConfigError(f"invalid --calib-samples {calib_samples}: use at least 1")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")


def default_name(model: str, precision: str, suffix: str, preset: str | None = None) -> str:
    """`MODEL_PRECISION[_PRESET]SUFFIX`: an int8 export for another preset never overwrites the default one."""
    tag = f"_{preset}" if precision == "int8" and preset else ""
    return f"{model}_{precision}{tag}{suffix}"


def resolve_output(output: str | os.PathLike[str] | None, default: str, suffix: str) -> Path:
    """The final artifact path; its folder is created and proven writable before any work starts."""
    if output is None:
        path = Path.cwd() / default
    else:
        path = Path(output).expanduser()
        # an existing folder named like the artifact (NAME.mlpackage/, NAME.ncnn/) is the artifact itself;
        # a trailing separator, or a new name without any suffix, is a folder to put the artifact in
        folder = str(output).endswith(("/", os.sep)) or (not path.exists() and not path.suffix)
        if folder or (path.is_dir() and not path.name.lower().endswith(suffix)):
            path = path / default
    if not path.name.lower().endswith(suffix):
        raise ConfigError(f"output {path.name!r} must end with {suffix}")
    if path.is_dir() and not suffix.endswith(("package", ".ncnn", ".openvino")):
        raise ConfigError(f"output {path} is a directory")
    check_writable(path.parent)
    return path


# ------------------------------------------------------------------------------------------ steps


def _example(deployed: "nn.Module", info: "ModelInfo", size: int, batch: int) -> tuple[Any, int]:
    """A real-photo example batch for the exporter, and the model's class count (it must run at `size`)."""
    import numpy as np
    import torch

    from edgevit.quantize.data import embedded_eval_images

    photos = embedded_eval_images(size, info.default_cfg["mean"], info.default_cfg["std"])
    example = torch.from_numpy(np.ascontiguousarray(np.resize(photos, (batch, 3, size, size))))
    try:
        with torch.no_grad():
            logits = deployed(example)
    except Exception as exc:
        raise ConfigError(
            f"{info.name} does not run at img_size {size}: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    return example, int(logits.shape[-1])


def _counts(model: "nn.Module", size: int) -> tuple[int, int]:
    """Parameters and MACs at `size` (recorded, so bench tables and plots have them for any artifact)."""
    from edgevit.models._macs import count_macs, count_params

    return count_params(model), count_macs(model, size)


def _weights(info: "ModelInfo", checkpoint: str | os.PathLike[str] | None, model: "nn.Module") -> Weights:
    from edgevit.models import SEEDED, state_dict_sha256
    from edgevit.models._build import DEFAULT_SEED

    state = state_dict_sha256(model)
    if checkpoint is None:
        return Weights(kind="seeded", seed=DEFAULT_SEED, init=SEEDED, state_sha256=state)
    path = Path(checkpoint).resolve()
    return Weights(kind="checkpoint", checkpoint=str(path), checkpoint_sha256=artifact_sha256(path), seed=None,
                   init="", state_sha256=state)


def _build(info: "ModelInfo", checkpoint: Any, size: int, num_classes: int | None) -> "nn.Module":
    from edgevit.models import build_reference

    with progress.step(f"build {info.name}" + (" (seeded weights)" if checkpoint is None else "")):
        try:
            return build_reference(info.name, checkpoint=checkpoint, img_size=size, num_classes=num_classes)
        except CheckpointError as exc:
            if "shape mismatch" in str(exc) and num_classes is None and "head" in str(exc):
                raise CheckpointError(f"{exc}; a fine-tuned head? pass --num-classes N") from None
            raise


def seeded_weights_notice(model: str) -> str:
    return (f"{model}: no --checkpoint, so the weights are seeded (deterministic, realistic scale), not trained: "
            "the artifact's fidelity to PyTorch is checked for real, but its accuracy means nothing")


def _record(info: "ModelInfo", backend: "Backend", precision: str, final: Path, tmp: Path, *, size: int,
            batch: int, dynamic_batch: bool, num_classes: int, weights: Weights, meta: dict[str, Any],
            opset: int | None, calib: "CalibrationSet | None", calib_method: str, notes: list[str]) -> ArtifactRecord:
    from edgevit.versions import CORE_DISTS, package_versions

    cfg = info.default_cfg
    runtime_dists = backend.runtime.dists if backend.runtime else ()
    return ArtifactRecord(
        artifact=final.name, model=info.name, family=info.family, target=backend.key, precision=precision,
        img_size=size, batch=batch, dynamic_batch=dynamic_batch, num_classes=num_classes,
        input=Preprocessing(mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                            resize=f"shorter side to img_size / {cfg.get('crop_pct', 0.875)}, centre crop"),
        weights=weights, opset=meta.get("opset", opset), sha256=artifact_sha256(tmp), size_bytes=artifact_size(tmp),
        versions=package_versions((*CORE_DISTS, *backend.requires, *runtime_dists)),
        calibration={**calib.describe(), "method": calib_method} if calib is not None else None,
        export=meta, int8_precision=_mixed_precision(meta), warnings=notes, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=" ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgevit") else None,
    )


def _mixed_precision(meta: dict[str, Any]) -> MixedPrecision | None:
    """The typed record of an exporter's latency-aware int8 selection (`edgevit.quantize.select`), if any."""
    sel = meta.get("int8_selection")
    return MixedPrecision.from_selection(sel, meta.get("int8_summary", "")) if isinstance(sel, dict) else None


def _verify(tmp: Path, final: Path, record: ArtifactRecord, ref_model: "nn.Module", calib: "CalibrationSet",
            threads: int | None) -> "VerifyReport":
    import numpy as np

    from edgevit.quantize.data import embedded_eval_images
    from edgevit.verify import verify as run_verify

    photos = embedded_eval_images(record.img_size, record.input.mean, record.input.std)
    images: np.ndarray = np.concatenate([calib.holdout, photos])
    data_info = {"holdout": {"source": calib.source, "images": int(len(calib.holdout))},
                 "embedded_photos": int(len(photos)), "images": int(len(images))}
    report = run_verify(tmp, record=record, reference_model=ref_model, images=images, data_info=data_info,
                        threads=threads)
    report.artifact = str(final)  # reports name the artifact the user gets, not the temporary name
    return report


def _run_exporter(backend: "Backend", req: Any) -> Any:
    """The backend's exporter; an interrupt that an SDK wrapped into its own error is an interrupt again
    (torch.export turns Ctrl-C into an exporter failure), never "export failed"."""
    try:
        return backend.export(req)
    except Exception as exc:
        if _interrupted(exc):
            raise KeyboardInterrupt() from None
        raise


def _interrupted(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt) or "KeyboardInterrupt" in str(e).split(":", 1)[0]:
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _cleanup(final: Path, tmp: Path) -> None:
    for leftover in final.parent.glob(f"{tmp.name}*"):
        remove_path(leftover)


def _renamed(exc: EdgeVitError, tmp: Path, final: Path) -> EdgeVitError:
    """The same error naming the artifact the user asked for, never the temporary name it was built under."""
    text = str(exc).replace(str(tmp), str(final)).replace(tmp.name, final.name)
    if text == str(exc):
        return exc
    new = type(exc)(text)
    new.exit_code = exc.exit_code
    return new


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
    calib_method: str | None = None,
    preset: str | None = None,
    simplify: bool = True,
    verify: bool = True,
    options: dict[str, Any] | None = None,
    threads: int | None = DEFAULT_THREADS,
    num_classes: int | None = None,
    int8_force: bool = False,
) -> ExportReport:
    """Export a registered model to a verified artifact plus its `<artifact>.json` record.

    Without `checkpoint` the weights are seeded (deterministic, realistic scale) and a RandomWeightsWarning
    says accuracy figures mean nothing. int8 calibrates on `calib_data` (a folder, recursively) or on the
    photos scikit-image ships. int8 keeps float wherever int8 does not pay on the target runtime
    (measured with `threads`) and refuses a slower artifact unless `int8_force`
    (`edgevit.quantize.select`). Raises EdgeVitError subclasses for anything a user can fix.
    """
    from edgevit.backends import ExportRequest, get_backend
    from edgevit.models import model_info
    from edgevit.quantize.data import load_calibration
    from edgevit.rewrite import deploy

    backend = get_backend(target)
    precision = precision or backend.default_precision
    backend.check_precision(precision)
    info = model_info(model)  # UnknownModelError with did-you-mean
    size = int(info.default_cfg["img_size"]) if img_size is None else img_size
    _validate(backend, img_size=size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
              calib_method=calib_method, preset=preset, calib_samples=calib_samples, precision=precision,
              threads=threads)
    calib_method = calib_method or next(iter(backend.calib_methods), "none")
    backend.check_available()
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    final = resolve_output(output, default_name(info.name, precision, backend.suffix, preset), backend.suffix)
    notes: list[str] = []
    if checkpoint is None:
        notes.append(seeded_weights_notice(info.name))
        progress.notice(notes[0])
        warnings.warn(notes[0], RandomWeightsWarning, stacklevel=2)

    # Images first: a bad calibration folder should fail in a second, not after the export.
    with progress.step("load calibration images" if precision == "int8" else "load verification images"):
        calib = load_calibration(calib_data, img_size=size, mean=info.default_cfg["mean"],
                                 std=info.default_cfg["std"], samples=calib_samples,
                                 for_calibration=precision == "int8")
    ref_model = _build(info, checkpoint, size, num_classes)
    with progress.step("count parameters and MACs"):
        counts = _counts(ref_model, size)
    with progress.step("deploy form"):
        deployed = deploy(ref_model)
        example, n_classes = _example(deployed, info, size, DYNAMIC_EXAMPLE_BATCH if dynamic_batch else batch)

    tmp = temp_sibling(final, backend.suffix)
    try:
        req = ExportRequest(
            model_name=info.name, model=deployed, example=example, output=tmp, precision=precision, img_size=size,
            batch=batch, dynamic_batch=dynamic_batch, opset=opset, calib=calib if precision == "int8" else None,
            calib_method=calib_method, preset=preset, simplify=simplify, mean=tuple(info.default_cfg["mean"]),
            std=tuple(info.default_cfg["std"]), options=dict(options or {}), threads=threads,
            int8_force=int8_force, trained_weights=checkpoint is not None,
        )
        with progress.step(f"export {backend.key} {precision}"):
            result = _run_exporter(backend, req)
        if Path(result.artifact) != tmp or not tmp.exists():  # exporters must write where they are told
            raise ExportError(f"the {backend.key} exporter did not write its artifact where it was told")
        record = _record(info, backend, precision, final, tmp, size=size, batch=batch, dynamic_batch=dynamic_batch,
                         num_classes=n_classes, weights=_weights(info, checkpoint, ref_model),
                         meta=result.metadata, opset=opset, calib=req.calib, calib_method=calib_method, notes=notes)
        record.params, record.macs = counts
        if note := result.metadata.get("int8_warning"):  # int8 forced where it does not pay: say so
            notes.append(note)
        report = None
        if verify:
            report = _verify(tmp, final, record, ref_model, calib, threads)
            record.verification = report.as_dict()
            if report.executed and not report.passed:
                raise VerificationError(f"{final.name} does not match the PyTorch reference ({precision}): "
                                        f"{report.reason}")
            if not report.executed:
                notes.append(f"not verified: {report.reason}")
        else:
            record.verification = {"executed": False, "reason": "skipped (verify=False)"}
        side_tmp = write_record(record, sidecar_path(tmp))  # all bytes on disk before either rename
        replace_path(tmp, final)
        replace_path(side_tmp, sidecar_path(final))
    except EdgeVitError as exc:
        _cleanup(final, tmp)
        raise _renamed(exc, tmp, final) from None
    except BaseException:
        _cleanup(final, tmp)
        raise
    if _default_inputs(checkpoint, calib_data, calib_samples, calib_method, preset, simplify, verify, options,
                       opset, dynamic_batch, num_classes, backend):
        from edgevit.cache import cache_key, remember

        remember(cache_key(info.name, target=backend.key, precision=precision, img_size=size, batch=batch), final)
    return ExportReport(artifact=final, sidecar=sidecar_path(final), record=record, verification=report,
                        warnings=notes)


def _default_inputs(checkpoint: Any, calib_data: Any, calib_samples: Any, calib_method: str, preset: Any,
                    simplify: bool, verify: bool, options: Any, opset: Any, dynamic_batch: bool, num_classes: Any,
                    backend: "Backend") -> bool:
    """Whether this export is the one `edgevit bench MODEL` would make itself (so bench may reuse it)."""
    default_method = next(iter(backend.calib_methods), "none")
    return (checkpoint is None and calib_data is None and calib_samples is None and calib_method == default_method
            and preset is None and simplify and verify and not options and opset is None and not dynamic_batch
            and num_classes is None)
