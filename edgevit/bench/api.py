"""`benchmark(...)`: plan cases from model names and artifact files under a device profile, run them,
and return a `BenchResults` that records the setup, the real host, versions and raw samples.

Off the profile's device the plan applies what it can (threads, runtime, precision, batch), says why
the numbers are not the device's in `setup["warnings"]`, and labels every result with the real host;
`strict=True` refuses instead.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevit.bench.profiles import DeviceProfile, HostInfo, detect_host, host_mismatches, load_profile
from edgevit.bench.protocol import Protocol
from edgevit.bench.runner import Case, CaseResult, run_cases
from edgevit.bench.validate import SCHEMA, check_results
from edgevit import progress
from edgevit.backends import backend_for_runtime
from edgevit.errors import ConfigError, EdgeVitError, Int8NotFasterError, UnavailableError


@dataclass
class BenchResults:
    """Everything one bench run produced; `to_dict()` is the JSON file format (raw samples included)."""

    setup: dict[str, Any]
    host: dict[str, Any]
    versions: dict[str, str]
    cases: list[CaseResult]
    profile: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    load_average: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "created": self.created, "setup": self.setup, "host": self.host,
            "versions": self.versions, "load_average": self.load_average, "profile": self.profile,
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchResults":
        check_results(d, "bench results")
        return cls(setup=d["setup"], host=d["host"], versions=d["versions"],
                   cases=[CaseResult.from_dict(c) for c in d["cases"]], profile=d.get("profile", {}),
                   created=d.get("created", ""), load_average=d.get("load_average", {}))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def stem(self) -> str:
        """A file name stem that says the setup: profile, runtime(s), precisions, threads, batch."""
        s = self.setup
        parts = ["bench", s["profile"], "+".join(s["runtimes"]) or "none", "+".join(s["precisions"]) or "none",
                 f"t{s['threads']}", "b" + "+".join(str(b) for b in s["batch"])]
        if s.get("suite"):
            parts.insert(1, s["suite"])
        if (s.get("board") or {}).get("name"):  # results of several boards in one folder stay apart
            parts.insert(1, str(s["board"]["name"]).replace("/", "_").replace("@", "_"))
        return "_".join(parts)


def load_results(path: str | Path) -> BenchResults:
    """Read a bench JSON file back (for `regress`, plots, comparisons)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    check_results(data, str(p))
    return BenchResults.from_dict(data)


def versions() -> dict[str, str]:
    """Versions that change latency, recorded in every result (published numbers without them are
    irreproducible: ncnn's own A17 table moved 1.7x between versions)."""
    from edgevit.backends import runtimes
    from edgevit.versions import CORE_DISTS, package_versions

    return package_versions([*CORE_DISTS, *(d for r in runtimes().values() for d in r.dists)])


# ---------------------------------------------------------------- planning
def available_runtimes() -> dict[str, str]:
    """Runtime key -> '' when available here, else the reason it is not."""
    from edgevit.backends import runtimes

    out = {}
    for key, spec in runtimes().items():
        a = spec.probe()
        out[key] = "" if a.available else (a.reason or "unavailable")
    return out


def choose_runtime(profile: DeviceProfile, requested: str | None, *, strict: bool,
                   available: dict[str, str] | None = None, where: str = "here") -> tuple[str, str]:
    """The runtime to measure with and, if it is not the profile's, the note that labels the results.
    `available` (runtime -> '' or why not) is the measuring machine's; default: this machine's."""
    avail = available_runtimes() if available is None else available
    want = requested or profile.runtime
    if avail.get(want) == "":
        return want, ""
    why = avail.get(want) or "no runner for it is installed in this edgevit"
    if requested:
        raise UnavailableError(f"runtime {want} is unavailable {where}: {why}")
    if strict:
        raise ConfigError(f"profile {profile.name} runs on {want}, which is unavailable {where} ({why}); "
                          "--strict refuses to fall back")
    for key in (*profile.fallback_runtimes, *sorted(avail)):
        if avail.get(key) == "":
            return key, f"fallback: {want} is unavailable {where} ({why}); measured with {key}"
    raise UnavailableError(f"no runtime available to run profile {profile.name} ({want}: {why})")


AUTO = "auto"  # a runtime choice: measure the profile's candidate runtimes, report the fastest


def pick_runtimes(profile: DeviceProfile, requested: str | None, *, strict: bool,
                  available: dict[str, str] | None = None, where: str = "here") -> list[tuple[str, str]]:
    """The runtimes to measure model names with, each with the note that labels its results: one (the
    requested or the profile's, or a fallback), or with `auto` every candidate available here."""
    want = requested or profile.runtime
    if want != AUTO:
        return [choose_runtime(profile, requested, strict=strict, available=available, where=where)]
    avail = available_runtimes() if available is None else available
    candidates = list(profile.candidates) or [k for k in avail if _auto_default(k)]
    picked = [(k, "") for k in candidates if avail.get(k) == ""]
    if not picked:
        raise UnavailableError(f"none of the candidate runtimes of {profile.name} is available {where}: "
                               + "; ".join(f"{k}: {avail.get(k) or 'not registered'}" for k in candidates))
    missing = [k for k in candidates if avail.get(k) != ""]
    note = f"auto: measuring {', '.join(k for k, _ in picked)}" + (
        f" (not available {where}: {', '.join(missing)})" if missing else "")
    return [(picked[0][0], note)] + picked[1:]


def _auto_default(runtime: str) -> bool:
    """Runtimes `auto` considers when a profile names none: every CPU runtime (not the GPU-only ones)."""
    from edgevit.backends import backend_for_runtime

    return not backend_for_runtime(runtime).requirement


def _runtime_precisions(picks: list[tuple[str, str]], prof: DeviceProfile,
                        requested: list[str]) -> list[tuple[str, str, list[str]]]:
    """Each picked runtime with the precisions to measure: the requested (or the profile's) that its target
    offers. With one runtime an unoffered precision is an error; with `auto` that runtime just skips it."""
    from edgevit.backends import backend_for_runtime

    out = []
    for rt, note in picks:
        tgt = backend_for_runtime(rt)
        wanted = requested or list(prof.precisions)
        precs = [p for p in wanted if p in tgt.precisions] or ([] if len(picks) > 1 else [tgt.default_precision])
        if len(picks) == 1 and requested:
            for p in requested:
                tgt.check_precision(p)
            precs = list(requested)
        if precs:
            out.append((rt, note, precs))
    return out


def _name_of(path: Path) -> str:
    from edgevit.backends import artifact_suffixes

    name = path.name
    for suffix in artifact_suffixes():
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def case_id(name: str, runtime: str, precision: str, batch: int, threads: int) -> str:
    return f"{name}/{runtime}/{precision}/b{batch}/t{threads}"


@dataclass
class Plan:
    profile: DeviceProfile
    host: HostInfo
    cases: list[Case]
    warnings: list[str]
    runtimes: list[str]
    precisions: list[str]
    threads: int
    batch: list[int]
    runtime_note: str = ""
    executor: Any = None  # where the cases run (edgevit.bench.executor); None: this machine
    auto: bool = False  # `--runtime auto`: the results name the fastest candidate per model


def plan(
    inputs: Sequence[str | Path],
    *,
    profile: str | Path | DeviceProfile = "host",
    runtime: str | None = None,
    precision: str | Sequence[str] | None = None,
    threads: int | None = None,
    batch: int | Sequence[int] | None = None,
    img_size: int | None = None,
    strict: bool = False,
    reference: bool = False,
    cache_root: Path | None = None,
    options: dict[str, Any] | None = None,
    executor: Any = None,
) -> Plan:
    """Resolve inputs (model names are exported into the cache; files are taken as they are) into cases.

    `options` go to the runners of the measured cases (e.g. ncnn `powersave`, `packing`), over the
    profile's `runtime_options`. `executor` is where the cases will run (default: this machine; a board:
    `edgevit.bench.remote.RemoteExecutor`): its facts decide the profile check, threads and runtimes."""
    from edgevit.bench.executor import LocalExecutor

    ex = executor or LocalExecutor()
    prof = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    host = ex.host()
    if prof.detected and ex.measured_on != "local" and prof.path:  # `host` means the board it runs on
        from edgevit.bench.profiles import load_profile_file

        prof = load_profile_file(Path(prof.path), host=host)
    warnings: list[str] = list(ex.warnings())
    mismatch = host_mismatches(prof, host)
    machine = "this machine" if ex.measured_on == "local" else ex.label
    if ex.measured_on == "emulated":
        if strict:
            raise ConfigError(f"{ex.label} is emulated (qemu): no device timing; --strict refuses")
        mismatch = mismatch or [f"{ex.label} runs under emulation"]
    if mismatch:
        if strict:
            raise ConfigError(f"{machine} is not the {prof.name} device ({'; '.join(mismatch)}); --strict refuses")
        labelled = "this host" if ex.measured_on == "local" else ex.label
        warnings.append(f"{machine} is not the {prof.name} device: {'; '.join(mismatch)}. Applying its settings "
                        f"(threads, runtime, precision, batch) on {host.cpu} x{host.cores}; results are labelled "
                        f"with {labelled}.")
    n_threads = prof.threads if threads is None else threads
    if n_threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {n_threads}")
    if n_threads > host.cores:
        msg = f"{n_threads} threads on {host.cores} usable cores: threads share cores (oversubscribed)"
        if strict:
            raise ConfigError(msg + "; --strict refuses")
        warnings.append(msg)
    batches = [batch] if isinstance(batch, int) else list(batch or prof.batch)
    if any(b < 1 for b in batches):
        raise ConfigError(f"--batch must be >= 1, got {batches}")
    precisions = [precision] if isinstance(precision, str) else list(precision or [])
    for p in precisions:
        if p not in prof.precisions:
            msg = f"profile {prof.name} does not use {p} (it uses {', '.join(prof.precisions)})"
            if strict:
                raise ConfigError(msg + "; --strict refuses")
            warnings.append(msg)
    if not inputs and not reference:
        raise ConfigError("nothing to benchmark: give model names, artifact files or --suite")

    models, files = split_inputs(inputs)
    cases: list[Case] = []
    used_runtimes: list[str] = []
    note = ""
    if models:
        from edgevit.cache import usable_cache_dir
        from edgevit.models import resolve_name

        usable_cache_dir(cache_root)  # one line naming EDGEVIT_CACHE now, not one failed case per model
        picks = pick_runtimes(prof, runtime, strict=strict, available=ex.available_runtimes(),
                              where="here" if ex.measured_on == "local" else f"on {ex.label}")
        warnings += [n for _rt, n in picks if n]
        for rt, rt_note, precs in _runtime_precisions(picks, prof, precisions):
            used_runtimes.append(rt)
            note = note or rt_note
            target_key = backend_for_runtime(rt).key
            for name in models:
                for p in precs:
                    for b in batches:
                        cases.append(_model_case(resolve_name(name), rt, target_key, p, b, n_threads, img_size,
                                                 cache_root, rt_note, int8_device=_int8_device(prof, target_key)))
    for f in files:
        cases.extend(_file_cases(f, runtime, precisions, batches, n_threads, used_runtimes))
    _apply_runner_options(cases, {**prof.runtime_options, **(options or {})})
    if mismatch:
        _attach_predictions(cases, prof)
    if reference:
        cases.insert(0, reference_case(n_threads, cache_root))
        if "onnxruntime" not in used_runtimes:
            used_runtimes.append("onnxruntime")
    seen: set[str] = set()
    for c in cases:
        if c.id in seen:
            raise ConfigError(f"two inputs give the same case {c.id!r} (same model, runtime, precision, batch "
                              "and threads); bench them in separate runs")
        seen.add(c.id)
    all_precisions = sorted({c.precision for c in cases if not c.reference})
    auto = (runtime or prof.runtime) == AUTO
    return Plan(prof, host, cases, warnings, used_runtimes, all_precisions, n_threads, batches, note, executor, auto)


def split_inputs(inputs: Sequence[str | Path]) -> tuple[list[str], list[Path]]:
    """Model names and artifacts: a folder that is not an artifact stands for the artifacts in it (an
    export's output folder); a missing path is an error naming the file, not an unknown model."""
    from edgevit.backends import artifact_suffixes

    suffixes = artifact_suffixes()
    models: list[str] = []
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and not path.name.lower().endswith(suffixes):
            found = sorted(p for p in path.iterdir() if p.name.lower().endswith(suffixes))
            if not found:
                raise ConfigError(f"{path} holds no artifact (looked for {', '.join(suffixes)})")
            files += found
        elif path.exists():
            files.append(path)
        elif str(item).lower().endswith(suffixes) or os.sep in str(item):
            raise ConfigError(f"artifact not found: {item}")
        else:
            models.append(str(item))
    return models, files


def _int8_device(prof: DeviceProfile, target: str) -> str | None:
    """The device whose predicted costs choose ncnn int8 layers: the profile's, when its predictor is
    fitted on that board's ncnn tables (ncnn int8 per-layer timing on the board itself is not built)."""
    return prof.name if prof.predict_board and target == "ncnn" else None


def _model_case(model: str, runtime: str, target: str, precision: str, batch: int, threads: int,
                img_size: int | None, cache_root: Path | None, note: str, int8_device: str | None = None) -> Case:
    """The case of a model name: its artifact from the cache (exported if needed); a failed export is a
    failed case with its one-line reason, so the other cases are still measured."""
    from edgevit.backends.ncnn.predicted import OPTION_DEVICE
    from edgevit.cache import get_artifact
    from edgevit.export import DEFAULT_THREADS

    # int8 chooses its float nodes by latency measured with the export's threads: the case's own; off the
    # device, ncnn int8 by the device's predicted costs
    options: dict[str, Any] | None = {"threads": threads} if precision == "int8" and threads != DEFAULT_THREADS else None
    if precision == "int8" and int8_device:
        options = {**(options or {}), "options": {OPTION_DEVICE: int8_device}}
    try:
        try:
            art = get_artifact(model, target=target, precision=precision, img_size=img_size, batch=batch,
                               options=options, root=cache_root)
        except Int8NotFasterError as exc:  # the export protects deployment; a benchmark still measures it
            progress.notice(f"{model}: {exc}; benchmarking it anyway (int8_force)")
            art = get_artifact(model, target=target, precision=precision, img_size=img_size, batch=batch,
                               options={**(options or {}), "int8_force": True}, root=cache_root)
            note = "; ".join(filter(None, [note, "int8 does not pay here: its export refuses without --int8-force"]))
    except EdgeVitError as exc:
        case = Case(id=case_id(model, runtime, precision, batch, threads), artifact="", runtime=runtime,
                    target=target, precision=precision, threads=threads, batch=batch, model=model,
                    img_size=img_size, runtime_note=note, error=f"export failed: {exc}")
        return case
    info = _record_info(art.record)
    return _case(art.path, model, runtime, target, precision, batch, threads, info, note)


def _attach_predictions(cases: list[Case], prof: DeviceProfile) -> None:
    """Measured off the device: each case also gets the device's predicted latency (its profile's
    predictor, for the case's precision and the profile's own runtime and threads), shown beside the
    host's measurement and labelled as a prediction. A case without a predictor simply has none."""
    from edgevit.predict.api import available, prediction_for_case

    if not available(prof):
        return
    with progress.step(f"predict for {prof.name}", total=len(cases)) as advance:
        for c in cases:
            item = c.model or c.artifact
            pred = prediction_for_case(item, device=prof.name, precision=c.precision,
                                       img_size=c.img_size) if item and not c.error else None
            if pred is not None:
                c.predicted = {"device": pred.device, "runtime": pred.runtime, "threads": pred.threads,
                               "precision": pred.precision, "predicted_ms": round(pred.predicted_ms, 2),
                               "interval_ms": [round(v, 2) for v in pred.interval_ms],
                               "calibration": pred.calibration, "extrapolates": pred.extrapolates}
            advance(1)


def _apply_runner_options(cases: list[Case], options: dict[str, Any]) -> None:
    """Give each case the options its runtime reads; an option no runtime of the plan reads is an error."""
    from edgevit.backends import get_runtime

    keys = {c.runtime: get_runtime(c.runtime).option_keys for c in cases}
    for key in options:
        if not any(key in known for known in keys.values()):
            offered = "; ".join(f"{rt}: {', '.join(k) or 'none'}" for rt, k in keys.items())
            raise ConfigError(f"runner option {key!r} is not read by the runtimes measured here ({offered})")
    for c in cases:
        c.options = {**c.options, **{k: v for k, v in options.items() if k in keys[c.runtime]}}


def _record_info(rec: Any) -> dict[str, Any]:
    """What a case takes from its artifact's record: sizes for the tables and the verification figures
    (what `--runtime auto` holds each candidate to)."""
    ver = rec.verification or {}
    out = (ver.get("outputs") or [{}])[0]
    verified = {"passed": bool(ver.get("passed")), "executed": bool(ver.get("executed")),
                "cosine": out.get("cosine"), "cosine_min": out.get("cosine_min"),
                "top1_agreement": out.get("top1_agreement")} if ver else None
    return {"img_size": rec.img_size, "params": rec.params, "macs": rec.macs, "verified": verified}


def _case(path: Path, model: str | None, runtime: str, target: str, precision: str, batch: int, threads: int,
          info: dict[str, Any], note: str = "") -> Case:
    from edgevit.artifact import artifact_sha256, artifact_size

    name = model or _name_of(path)
    return Case(
        id=case_id(name, runtime, precision, batch, threads), artifact=str(path.resolve()), runtime=runtime,
        target=target, precision=precision, threads=threads, batch=batch, model=model,
        img_size=info.get("img_size"), params=info.get("params"), macs=info.get("macs"),
        model_size_bytes=artifact_size(path), artifact_sha256=artifact_sha256(path),
        runtime_note=note, verified=info.get("verified"),
    )


def _file_cases(path: Path, runtime: str | None, precisions: list[str], batches: list[int], threads: int,
                used: list[str]) -> list[Case]:
    """An artifact runs in its target's runtime (or another that loads it); its precision, batch and
    model come from its record."""
    from edgevit.artifact import read_record
    from edgevit.backends import backend_for_artifact, runtimes_for_artifact

    tgt = backend_for_artifact(path)
    able = runtimes_for_artifact(path)
    if not able:
        raise UnavailableError(f"{path.name}: target {tgt.key} has no runtime in edgevit")
    if runtime and runtime not in able:
        raise ConfigError(f"{path.name} is a {tgt.key} artifact, run by {', '.join(able)}, not {runtime}")
    rt = runtime or able[0]
    rec = read_record(path)
    precision = rec.precision if rec else (precisions[0] if len(precisions) == 1 else "fp32")
    batch = rec.batch if rec else (batches[0] if len(batches) == 1 else 1)
    if rt not in used:
        used.append(rt)
    info = _record_info(rec) if rec else {}
    # An exported artifact is "this model at this precision": same case id as benching the model by
    # name, so a baseline made from names can judge an artifact put in its place (and vice versa).
    return [_case(path, rec.model if rec else None, rt, tgt.key, precision, batch, threads, info)]


def reference_case(threads: int, cache_root: Path | None = None) -> Case:
    """The machine-speed reference (a fixed synthetic ONNX conv stack, see `synthetic`)."""
    from edgevit.cache import cache_dir
    from edgevit.bench import synthetic as syn

    path = syn.reference_artifact(cache_root or cache_dir())
    info = {"img_size": syn.REFERENCE_SIZE, "macs": syn.conv_stack_macs(
        syn.REFERENCE_LAYERS, channels=syn.REFERENCE_CHANNELS, size=syn.REFERENCE_SIZE)}
    case = _case(path, None, "onnxruntime", "onnx", "fp32", 1, threads, info)
    case.id = case_id(syn.REFERENCE_NAME, "onnxruntime", "fp32", 1, threads)
    case.reference = True
    return case


# ---------------------------------------------------------------- running
def run_plan(p: Plan, protocol: Protocol, *, progress: bool = False, suite: str = "",
             on_result: Callable[[CaseResult], None] | None = None, timeout_s: float | None = None) -> BenchResults:
    from edgevit.bench.executor import LocalExecutor

    ex = p.executor or LocalExecutor()
    load_start = ex.load_average()
    results = run_cases(p.cases, protocol, progress=progress, on_result=on_result, executor=ex.run_case,
                        **({"timeout_s": timeout_s} if timeout_s else {}))
    case_warnings = [f"{r.case.id}: {w}" for r in results for w in r.warnings]
    setup = {
        "profile": p.profile.name, "profile_title": p.profile.title,
        "on_device": not host_mismatches(p.profile, p.host) and ex.measured_on != "emulated",
        "measured_on": ex.measured_on,
        "warnings": p.warnings + case_warnings, "runtimes": p.runtimes, "runtime_note": p.runtime_note,
        "precisions": p.precisions, "threads": p.threads, "batch": p.batch, "protocol": protocol.to_dict(),
        "suite": suite, "host_fingerprint": p.host.fingerprint,
    }
    if ex.measured_on != "local":  # the board measured; this host exported and drove it
        setup["board"] = ex.where()
        setup["controller"] = {"host": detect_host().to_dict(), "versions": versions()}
    res = BenchResults(
        setup=setup, host=ex.host_record(), versions=ex.versions(), cases=results, profile=p.profile.to_dict(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        load_average={"start": load_start, "end": ex.load_average()},
    )
    if p.auto:
        from edgevit.bench.choose import choose

        res.setup["auto"] = {model: c.to_dict() for model, c in choose(res).items()}
    return res


def benchmark(
    inputs: Sequence[str | Path] = (),
    *,
    profile: str | Path | DeviceProfile = "host",
    runtime: str | None = None,
    precision: str | Sequence[str] | None = None,
    threads: int | None = None,
    batch: int | Sequence[int] | None = None,
    img_size: int | None = None,
    warmup: int = 5,
    warmup_seconds: float = 0.2,
    runs: int = 50,
    min_seconds: float = 0.0,
    strict: bool = False,
    reference: bool = False,
    progress: bool = False,
    cache_root: Path | None = None,
) -> BenchResults:
    """Benchmark model names and/or artifact files under a device profile, one fresh process per case.

    >>> res = benchmark(["cas_vit_xs"], profile="host", precision=["fp32", "int8"], threads=2)
    >>> res.cases[0].stats["median"]  # ms; raw samples in res.cases[0].samples_ms
    """
    protocol = Protocol(warmup=warmup, warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds)
    p = plan(inputs, profile=profile, runtime=runtime, precision=precision, threads=threads, batch=batch,
             img_size=img_size, strict=strict, reference=reference, cache_root=cache_root)
    return run_plan(p, protocol, progress=progress)
