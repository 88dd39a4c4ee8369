"""Host calibration: export the standard networks (`nets`) with edgevit's exporters, measure them with
`edgevit bench`'s runner on this machine, and fit this host's cost model.

Exports are cached under `<edgevit cache>/predict/nets/` by a digest of the network definitions and
the exporter, so a recalibration only measures. The fitted model is written to
`<edgevit cache>/predict/host_<runtime>_t<threads>_fp32.json` with the machine it describes (CPU,
fingerprint, load average) and the protocol; `edgevit predict --device host` reads it back.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgevit.backends import get_backend
from edgevit.errors import CalibrationError, ConfigError
from edgevit.predict.costmodel import CostModel, Row, fit_model
from edgevit.predict.data import HOST_SCHEMA, host_dir, read_json, write_json

TARGET_OF_RUNTIME = {"ncnn": "ncnn", "onnxruntime": "onnx"}
DEFAULT_STRUCTURE_FALLBACK = "kernels"


def _structure() -> str:
    """The structure the board predictors chose (one model shape everywhere), else the default."""
    try:
        from edgevit.predict.data import predictors_data

        return str(predictors_data()["structure"])
    except ConfigError:
        return DEFAULT_STRUCTURE_FALLBACK


def _digest(target: str) -> str:
    from edgevit.cache import source_digest
    from edgevit.predict import nets
    from edgevit.versions import package_versions

    backend = get_backend(target)
    h = hashlib.sha256(inspect.getsource(nets).encode())
    h.update(source_digest("", target).encode())  # the target's backend folder and the shared pipeline
    runtime_dists = backend.runtime.dists if backend.runtime else ()
    h.update(json.dumps(package_versions((*backend.requires, *runtime_dists)), sort_keys=True).encode())
    return h.hexdigest()[:12]


def export_network(name: str, *, target: str, root: Path | None = None,
                   log: Callable[[str], None] | None = None) -> Path:
    """The artifact of one standard network (deploy form, fp32, batch 1), exported once and cached."""
    import torch

    from edgevit.artifact import ArtifactRecord, artifact_sha256, artifact_size, sidecar_path, write_record
    from edgevit.backends import ExportRequest
    from edgevit.files import remove_path, replace_path, temp_sibling
    from edgevit.predict.nets import IMG_SIZE, build
    from edgevit.rewrite import deploy

    backend = get_backend(target)
    final = (root or host_dir()) / "nets" / f"{name}-{_digest(target)}{backend.suffix}"
    if final.exists() and sidecar_path(final).is_file():
        return final
    if log:
        log(f"exporting standard network {name} ({target})")
    size = IMG_SIZE[name]
    tmp = temp_sibling(final, backend.suffix)
    final.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        example = torch.randn(1, 3, size, size)
    try:
        result = backend.export(ExportRequest(model_name=name, model=deploy(build(name)), example=example,
                                              output=tmp, img_size=size))
        record = ArtifactRecord(artifact=final.name, model=name, target=target, precision="fp32", img_size=size,
                                sha256=artifact_sha256(tmp), size_bytes=artifact_size(tmp), export=result.metadata,
                                warnings=["standard network of edgevit.predict.nets, random weights: for timing"])
        side_tmp = write_record(record, sidecar_path(tmp))
        replace_path(tmp, final)
        replace_path(side_tmp, sidecar_path(final))
    finally:
        for leftover in final.parent.glob(f"{tmp.name}*"):
            remove_path(leftover)
    return final


STATISTICS = ("median", "min")


def measure(paths: Sequence[Path], *, runtime: str, threads: int, runs: int, warmup: int = 3,
            statistic: str = "median", progress: bool = True) -> tuple[dict[str, float], dict[str, Any]]:
    """ms per artifact (bench's `statistic` over its timed runs: median, or min on a loaded machine where
    interference only adds time) with edgevit bench's runner (a fresh process per case), and the setup."""
    if statistic not in STATISTICS:
        raise ConfigError(f"statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import Protocol

    p = plan([str(x) for x in paths], profile="host", runtime=runtime, threads=threads)
    res = run_plan(p, Protocol(warmup=warmup, runs=runs), progress=progress)
    failed = [f"{c.case.id}: {c.error}" for c in res.cases if not c.ok]
    if failed:
        raise CalibrationError(f"{len(failed)} calibration network(s) failed to run: {'; '.join(failed)[:300]}")
    out = {}
    for c in res.cases:
        out[Path(c.case.artifact).name] = float(c.stats[statistic])
    return out, {"load_average": res.load_average, "versions": res.versions, "host": res.host,
                 "protocol": {"warmup": warmup, "runs": runs, "statistic": statistic}}


def host_model_path(runtime: str, threads: int, root: Path | None = None) -> Path:
    return (root or host_dir()) / f"host_{runtime}_t{threads}_fp32.json"


def calibrate_host(*, runtime: str = "ncnn", threads: int | None = None, networks: Sequence[str] | None = None,
                   runs: int = 20, statistic: str = "median", out: Path | None = None, root: Path | None = None,
                   log: Callable[[str], None] | None = None) -> tuple[CostModel, Path]:
    """Export, measure and fit; write the host model JSON and return it with its path."""
    from edgevit.bench.profiles import detect_host, load_profile
    from edgevit.predict.api import artifact_features
    from edgevit.predict.nets import NETWORKS

    if runtime not in TARGET_OF_RUNTIME:
        raise ConfigError(f"host calibration runs on {' or '.join(TARGET_OF_RUNTIME)}, not {runtime!r}")
    names = list(networks or NETWORKS)
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        raise ConfigError(f"unknown standard network(s) {', '.join(unknown)}; known: {', '.join(NETWORKS)}")
    th = threads or load_profile("host").threads
    target = TARGET_OF_RUNTIME[runtime]
    paths = [export_network(n, target=target, root=root, log=log) for n in names]
    if log:
        log(f"measuring {len(paths)} standard networks with {runtime}, {th} threads, {runs} runs each")
    ms, setup = measure(paths, runtime=runtime, threads=th, runs=runs, statistic=statistic)
    rows = [Row(n, artifact_features(p), ms[p.name]) for n, p in zip(names, paths, strict=True)]
    host = detect_host()
    source = {"board": f"this host ({host.cpu} x{host.cores})", "cpu": host.cpu, "fingerprint": host.fingerprint,
              "created": datetime.now(UTC).isoformat(timespec="seconds"), "runtime": runtime,
              "latency": f"edgevit bench {statistic} of {runs} runs", **setup}
    model = select_host_structure(rows, runtime=runtime, threads=th, source=source)
    doc = {"schema": HOST_SCHEMA, "model": model.to_dict()}
    path = write_json(out or host_model_path(runtime, th, root), doc)
    return model, path


def select_host_structure(rows: Sequence[Row], *, runtime: str, threads: int, source: dict[str, Any]) -> CostModel:
    """Fit every candidate structure on the host's rows and keep the best by leave-one-out (largest share
    within ±20 %, then lowest median), the criterion the board predictors use; the scores are recorded."""
    from edgevit.predict.costmodel import STRUCTURES

    fits = {s: fit_model(rows, device="host", runtime=runtime, threads=threads, precision="fp32", structure=s,
                         source=source) for s in STRUCTURES}
    best = min(fits, key=lambda s: (-round(fits[s].loo.within(0.2), 3), fits[s].loo.median_abs,
                                    s != _structure()))
    model = fits[best]
    model.source["structure_selection"] = {s: m.loo.summary() for s, m in fits.items()}
    return model


def load_host_model(path: Path) -> CostModel | None:
    """A host calibration file back as a CostModel (None if it is not one)."""
    try:
        doc = read_json(path, HOST_SCHEMA)
    except ConfigError:
        return None
    return CostModel.from_dict(doc["model"])
