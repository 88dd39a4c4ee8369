"""Verification: run an artifact in its runtime and compare it with its PyTorch reference on real photos.

Every export calls this before it renames the artifact into place, and `edgevit verify` calls it again
later from the artifact record alone: the reference model is rebuilt from the record (weights hash
checked), the artifact's own sha256 is checked against the record, and the images are normalised with
the preprocessing the record names. fp32 is held to the conformance bound; fp16 and int8 to cosine
similarity and top-1 agreement (error quantiles and SQNR are reported too).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgevit import progress
from edgevit.artifact import ArtifactRecord, artifact_size, check_integrity, read_record
from edgevit.errors import ConfigError, EdgeVitError, UnavailableError, VerificationError

if TYPE_CHECKING:
    from torch import nn

    from edgevit.backends import Backend

# Thresholds by precision. fp32: conformance bound (absolute, relative to max(1, max|ref|)) and a
# relative bound. Others: cosine / top-1 agreement (top-1 only judged with trained weights).
FP32_ATOL = 1e-4
FP32_RTOL = 1e-3
THRESHOLDS: dict[str, dict[str, float]] = {
    "fp32": {"cosine": 0.99999},
    "fp16": {"cosine": 0.999, "top1_agreement": 0.9},
    "int8": {"cosine": 0.98, "top1_agreement": 0.8},
}
LATENCY_RUNS = 20
BATCH_CHECK = 3  # a dynamic-batch artifact must really run this batch


@dataclass
class OutputReport:
    """Comparison of one output (the logits) over all verification images."""

    name: str
    images: int
    max_abs_error: float
    mean_abs_error: float
    max_abs_ref: float
    relative_error: float  # max|diff| / max|ref|
    error_quantiles: dict[str, float]  # of |diff| / max|ref|: p50, p90, p99
    cosine: float  # mean over images of per-image cosine
    cosine_min: float
    sqnr_db: float
    top1_agreement: float
    nonfinite: int = 0  # NaN or inf values in the artifact's output
    failures: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Everything `verify` found; `as_dict()` is what the artifact record stores."""

    artifact: str
    target: str
    precision: str
    executed: bool
    passed: bool
    reason: str = ""  # why not executed, or why it failed
    data: dict[str, Any] = field(default_factory=dict)  # what images were used
    outputs: list[OutputReport] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    judged_top1: bool = True
    size_bytes: int = 0
    inspection: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    dynamic_batch_check: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def status(self) -> str:
        if not self.executed:
            return f"not executed: {self.reason}"
        return "passed" if self.passed else f"FAILED: {self.reason}"


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b` (float64; 1 where both are zero)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    same = np.abs(a - b).max(axis=1) == 0
    return np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), np.where(same, 1.0, 0.0))


def conformance_bound(ref: np.ndarray) -> float:
    """The fp32 bound: FP32_ATOL * max(1, max|ref|) (the official-checkpoint conformance rule)."""
    return FP32_ATOL * max(1.0, float(np.abs(ref).max()) if ref.size else 1.0)


def compare(ref: np.ndarray, out: np.ndarray, name: str = "logits") -> OutputReport:
    """All fidelity metrics of `out` against `ref` (both (N, C)); non-finite outputs are counted, not hidden."""
    ref = ref.astype(np.float64).reshape(len(ref), -1)
    out = out.astype(np.float64).reshape(len(out), -1)
    nonfinite = int((~np.isfinite(out)).sum())
    out = np.where(np.isfinite(out), out, 0.0)
    diff = np.abs(out - ref)
    max_ref = float(np.abs(ref).max()) if ref.size else 0.0
    scale = max_ref if max_ref > 0 else 1.0
    cos = cosine_rows(ref, out)
    noise, signal = float((diff**2).sum()), float((ref**2).sum())
    sqnr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    rel = diff / scale
    return OutputReport(
        name=name, images=len(ref), max_abs_error=float(diff.max()), mean_abs_error=float(diff.mean()),
        max_abs_ref=max_ref, relative_error=float(diff.max() / scale),
        error_quantiles={f"p{q}": float(np.quantile(rel, q / 100)) for q in (50, 90, 99)},
        cosine=float(cos.mean()), cosine_min=float(cos.min()), sqnr_db=sqnr,
        top1_agreement=float((ref.argmax(1) == out.argmax(1)).mean()), nonfinite=nonfinite,
    )


def thresholds_for(precision: str) -> dict[str, float]:
    return dict(THRESHOLDS.get(precision, THRESHOLDS["int8"]))


def judge(rep: OutputReport, precision: str, *, judge_top1: bool = True,
          thresholds: dict[str, float] | None = None) -> list[str]:
    """The failures of one output against its precision's thresholds (empty when it passes).
    fp32 is held to the per-image minimum cosine; fp16/int8 to the mean (the usual figure)."""
    if rep.nonfinite:
        return [f"the artifact's outputs hold {rep.nonfinite} NaN/inf values over {rep.images} images: "
                "broken weights, an overflow in its precision, or a bad graph"]
    fails = []
    if precision == "fp32":
        bound = FP32_ATOL * max(1.0, rep.max_abs_ref)  # conformance_bound, from the report's own max|ref|
        if rep.max_abs_error > bound:
            fails.append(f"max abs error {rep.max_abs_error:.3g} > conformance bound {bound:.3g}")
        if rep.relative_error > FP32_RTOL:
            fails.append(f"relative error {rep.relative_error:.3g} > {FP32_RTOL:g}")
    th = thresholds or thresholds_for(precision)
    cos = rep.cosine_min if precision == "fp32" else rep.cosine
    if cos < th["cosine"]:
        fails.append(f"cosine {cos:.5f} < {th['cosine']}")
    if judge_top1 and "top1_agreement" in th and rep.top1_agreement < th["top1_agreement"]:
        fails.append(f"top-1 agreement {rep.top1_agreement:.3f} < {th['top1_agreement']}")
    return fails


def _run_batched(fn: Any, x: np.ndarray, batch: int) -> np.ndarray:
    """Run `fn` over `x` in chunks of exactly `batch` (fixed-batch artifacts), tiling the last one."""
    outs = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.resize(chunk, (batch, *chunk.shape[1:]))
        outs.append(np.asarray(fn(chunk))[:n])
    return np.concatenate(outs)


def _reference(model: "nn.Module") -> Any:
    import torch

    def fn(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(x))).float().numpy()

    return fn


def _latency(runner: Any, x: np.ndarray) -> dict[str, float]:
    """A quick latency figure for the report (the protocol `edgevit bench` uses, with few runs)."""
    from edgevit.bench.protocol import Protocol, measure, summarize

    timing = measure(lambda: runner.infer(x), Protocol(warmup=3, warmup_seconds=0.0, runs=LATENCY_RUNS))
    stats = summarize([ns / 1e6 for ns in timing.samples_ns])
    return {"median": stats["median"], "p90": stats["p90"], "runs": LATENCY_RUNS, "batch": int(len(x))}


def _input_batch(inspection: dict[str, Any], batch: int, dynamic: bool) -> tuple[int, bool]:
    """Batch of the artifact input from static inspection when available, else from the record."""
    inputs = inspection.get("inputs") or {}
    shape = next(iter(inputs.values()), None) if inputs else None
    if shape:
        dim0 = shape[0]
        if isinstance(dim0, str) or dim0 in (0, -1):
            return batch, True
        return int(dim0), False
    return batch, dynamic


def _embedded_preprocessing(inspection: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    """mean/std the artifact carries in its own metadata (ONNX metadata_props, Core ML, .ptl, ncnn)."""
    meta = inspection.get("metadata") or {}
    out = {}
    for key in ("mean", "std"):
        value = meta.get(key, meta.get(f"edgevit.{key}"))
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        try:
            out[key] = tuple(round(float(v), 6) for v in value) if value is not None else None
        except (TypeError, ValueError):
            continue
    return {k: v for k, v in out.items() if v}


def _check_record(record: ArtifactRecord, inspection: dict[str, Any]) -> list[str]:
    """The record must describe this artifact: the model and the preprocessing it carries itself."""
    embedded = _embedded_preprocessing(inspection)
    recorded = {"mean": tuple(round(float(v), 6) for v in record.input.mean),
                "std": tuple(round(float(v), 6) for v in record.input.std)}
    problems = [f"the sidecar's {k} {list(recorded[k])} is not the artifact's own {list(v)}"
                for k, v in embedded.items() if v != recorded[k]]
    meta = inspection.get("metadata") or {}
    model = meta.get("model", meta.get("edgevit.model"))
    if isinstance(model, str) and model and model != record.model:
        problems.append(f"the sidecar names model {record.model!r}, the artifact was exported from {model!r}")
    return problems


def verification_images(record: ArtifactRecord, calib_data: str | Path | None = None
                        ) -> tuple[np.ndarray, dict[str, Any]]:
    """Embedded real photos (centre crops, the record's preprocessing) + a calibration folder's hold-out."""
    from edgevit.quantize.data import embedded_eval_images, from_folder

    mean, std = record.input.mean, record.input.std
    photos = embedded_eval_images(record.img_size, mean, std)
    info: dict[str, Any] = {"embedded_photos": int(len(photos)), "mean": list(mean), "std": list(std)}
    if calib_data is not None:
        cs = from_folder(calib_data, img_size=record.img_size, mean=mean, std=std, samples=0, enforce_floor=False)
        info["holdout"] = {"source": cs.source, "images": int(len(cs.holdout))}
        photos = np.concatenate([cs.holdout, photos])
    info["images"] = int(len(photos))
    return photos, info


def _inspect(backend: "Backend", path: Path) -> dict[str, Any]:
    if backend.inspect is None:
        return {}
    try:
        return backend.inspect(path)
    except EdgeVitError as exc:
        return {"error": str(exc)}


def verify(
    artifact: str | Path,
    *,
    record: ArtifactRecord | None = None,
    reference_model: "nn.Module | None" = None,
    images: np.ndarray | None = None,
    data_info: dict[str, Any] | None = None,
    threads: int | None = 2,
    calib_data: str | Path | None = None,
    raise_on_failure: bool = False,
) -> VerifyReport:
    """Verify an artifact against its PyTorch reference on real photos.

    What is missing comes from the artifact record beside it: the reference is rebuilt from it, the
    images use its preprocessing (plus the hold-out of `calib_data` when given). A record whose hash
    does not match the artifact is a VerificationError. With `raise_on_failure`, so is a failed comparison.
    """
    from edgevit.backends import get_backend, open_runner

    path = Path(artifact)
    if not path.exists():
        raise ConfigError(f"artifact not found: {path}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    record = record or read_record(path)
    if record is None:
        raise ConfigError(f"no sidecar {path.name}.json beside {path.name}: verify needs the record export wrote")
    check_integrity(path, record)
    backend = get_backend(record.target)
    inspection = _inspect(backend, path)
    batch, dynamic = _input_batch(inspection, record.batch, record.dynamic_batch)
    report = VerifyReport(artifact=str(path), target=backend.key, precision=record.precision, executed=False,
                          passed=False, thresholds=thresholds_for(record.precision),
                          size_bytes=artifact_size(path), inspection=inspection, judged_top1=not record.random_weights)
    if record.precision == "fp32":
        report.thresholds.update({"conformance_atol": FP32_ATOL, "relative_error": FP32_RTOL})
    mismatch = _check_record(record, inspection)
    if mismatch:
        raise VerificationError(f"{path.name}: " + "; ".join(mismatch))
    if images is None:
        images, data_info = verification_images(record, calib_data)
    report.data = dict(data_info or {"images": int(len(images))})
    if record.random_weights:
        report.data["note"] = "seeded weights: top-1 agreement recorded, not judged (the labels mean nothing)"
    if backend.runtime is None:
        report.reason = f"target {backend.key} has no runtime in edgevit"
        return report
    options = dict(record.export.get("verify_runner_options") or {})
    if options:
        report.data |= {"runner_options": options, "runner_note": record.export.get("verify_note", "")}
    try:
        runner = open_runner(backend.runtime.key, path, threads=threads, **options)
    except UnavailableError as exc:
        report.reason = str(exc)
        return report
    with runner:
        ref_model = reference_model if reference_model is not None else record.rebuild_reference()
        _execute(report, runner, ref_model, images, batch, dynamic, path)
    failures = [f"{o.name}: {f}" for o in report.outputs for f in o.failures]
    report.passed = not failures
    report.reason = "; ".join(failures)
    if raise_on_failure and not report.passed:
        raise VerificationError(f"{path.name} ({record.precision}) does not match the PyTorch reference: "
                                f"{report.reason}")
    return report


def _execute(report: VerifyReport, runner: Any, ref_model: "nn.Module", images: np.ndarray, batch: int,
             dynamic: bool, path: Path) -> None:
    """Run reference and artifact over the images, judge, check a dynamic batch, take a quick latency."""
    with progress.step(f"verify on {len(images)} images", total=2) as advance:
        ref = _run_batched(_reference(ref_model), images, batch)
        advance(1)
        try:
            out = _run_batched(runner.infer, images, batch)
        except Exception as exc:
            raise VerificationError(f"{path.name} failed to run in {report.target}'s runtime: "
                                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        advance(1)
    report.executed = True
    if not np.isfinite(ref).all():
        raise VerificationError("the PyTorch reference itself gives NaN/inf logits: its weights are broken")
    rep = compare(ref, out)
    rep.failures = judge(rep, report.precision, judge_top1=report.judged_top1, thresholds=report.thresholds)
    report.outputs.append(rep)
    if dynamic:
        report.dynamic_batch_check = _check_dynamic(runner, ref_model, images)
        if not report.dynamic_batch_check.startswith("ok"):
            rep.failures.append(report.dynamic_batch_check)
    with progress.step("quick latency"):
        x = np.resize(images, (1 if dynamic else batch, *images.shape[1:]))
        report.latency_ms = _latency(runner, np.ascontiguousarray(x))


def _check_dynamic(runner: Any, model: "nn.Module", images: np.ndarray) -> str:
    """A dynamic-batch artifact must really run another batch (exporters fix it silently)."""
    x = np.ascontiguousarray(np.resize(images, (BATCH_CHECK, *images.shape[1:])))
    try:
        out = runner.infer(x)
    except Exception as exc:
        return f"dynamic batch: batch {BATCH_CHECK} fails to run: {str(exc).splitlines()[0]}"
    ref = _reference(model)(x)
    if out.shape != ref.shape:
        return f"dynamic batch: batch {BATCH_CHECK} gives shape {out.shape}, expected {ref.shape}"
    return f"ok: batch {BATCH_CHECK} runs (cosine {compare(ref, out).cosine_min:.6f})"
