"""`benchmark(...)`: plan cases from model names and artifact files under a device profile, run them,
and return a `BenchResults` that records the setup, the real host, versions and raw samples.

Off the profile's device the plan applies what it can (threads, runtime, precision, batch), says why
the numbers are not the device's in `setup["warnings"]`, and labels every result with the real host;
`strict=True` refuses instead.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevit.bench.profiles import DeviceProfile, HostInfo, detect_host, host_mismatches, load_average, load_profile
from edgevit.bench.protocol import Protocol
from edgevit.bench.runner import Case, CaseResult, run_cases
from edgevit.errors import ConfigError, UnavailableError

SCHEMA = "edgevit.bench/1"


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
        if d.get("schema") != SCHEMA:
            raise ConfigError(f"not an edgevit bench result (schema {d.get('schema')!r}, expected {SCHEMA!r})")
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
    return BenchResults.from_dict(data)


def versions() -> dict[str, str]:
    """Versions that change latency, recorded in every result (published numbers without them are
    irreproducible: ncnn's own A17 table moved 1.7x between versions)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("edgevit", "numpy", "onnxruntime", "onnx", "torch", "ncnn", "executorch", "coremltools", "openvino"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------- planning
def _available_runtimes() -> dict[str, str]:
    """Runtime key -> '' when available here, else the reason it is not."""
    from edgevit.runtimes import runtimes

    out = {}
    for key, spec in runtimes().items():
        a = spec.probe()
        out[key] = "" if a.available else (a.reason or "unavailable")
    return out


def choose_runtime(profile: DeviceProfile, requested: str | None, *, strict: bool) -> tuple[str, str]:
    """The runtime to measure with and, if it is not the profile's, the note that labels the results."""
    avail = _available_runtimes()
    want = requested or profile.runtime
    if avail.get(want) == "":
        return want, ""
    why = avail.get(want) or "no runner for it is installed in this edgevit"
    if requested:
        raise UnavailableError(f"runtime {want} is unavailable here: {why}")
    if strict:
        raise ConfigError(f"profile {profile.name} runs on {want}, which is unavailable here ({why}); "
                          "--strict refuses to fall back")
    for key in (*profile.fallback_runtimes, *sorted(avail)):
        if avail.get(key) == "":
            return key, f"fallback: {want} is unavailable here ({why}); measured with {key}"
    raise UnavailableError(f"no runtime available to run profile {profile.name} ({want}: {why})")


def target_for_runtime(runtime: str) -> str:
    """The export target whose artifacts this runtime runs (first in the targets table)."""
    from edgevit.exporters import targets

    for key, t in targets().items():
        if t.runtime == runtime:
            return key
    raise ConfigError(f"no export target produces artifacts for runtime {runtime!r}")


def _name_of(path: Path) -> str:
    name = path.name
    for suffix in (".onnx", ".pte", ".ptl", ".pt", ".mlpackage", ".mlmodel", ".engine", ".param", ".bin"):
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
    log: Callable[[str], None] | None = None,
    options: dict[str, Any] | None = None,
) -> Plan:
    """Resolve inputs (model names are exported into the cache; files are taken as they are) into cases.

    `options` go to the runners of the measured cases (e.g. ncnn `powersave`, `packing`), over the
    profile's `runtime_options`."""
    prof = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    host = detect_host()
    warnings: list[str] = []
    mismatch = host_mismatches(prof, host)
    if mismatch:
        if strict:
            raise ConfigError(f"this machine is not a {prof.name} ({'; '.join(mismatch)}); --strict refuses")
        warnings.append(f"NOT a {prof.name}: {'; '.join(mismatch)}. Applying its settings (threads, runtime, "
                        f"precision, batch) on {host.cpu} x{host.cores}; results are labelled with this host.")
    n_threads = threads or prof.threads
    if n_threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {n_threads}")
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

    models = [str(i) for i in inputs if not Path(i).exists()]
    files = [Path(i) for i in inputs if Path(i).exists()]
    cases: list[Case] = []
    used_runtimes: list[str] = []
    note = ""
    if models:
        from edgevit.models import resolve_name

        rt, note = choose_runtime(prof, runtime, strict=strict)
        if note:
            warnings.append(note)
        used_runtimes.append(rt)
        target_key = target_for_runtime(rt)
        from edgevit.exporters import check_precision, get_target

        tgt = get_target(target_key)
        precs = precisions or [p for p in prof.precisions if p in tgt.precisions] or [tgt.default_precision]
        for p in precs:
            check_precision(tgt, p)
        from edgevit.bench.cache import get_artifact

        for name in models:
            canonical = resolve_name(name)
            for p in precs:
                for b in batches:
                    art = get_artifact(canonical, target=target_key, precision=p, img_size=img_size, batch=b,
                                       root=cache_root, log=log)
                    cases.append(_case(art.path, canonical, rt, target_key, p, b, n_threads, art.info, note))
    for f in files:
        cases.extend(_file_cases(f, runtime, precisions, batches, n_threads, used_runtimes))
    _apply_runner_options(cases, {**prof.runtime_options, **(options or {})})
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
    return Plan(prof, host, cases, warnings, used_runtimes, all_precisions, n_threads, batches, note)


def _apply_runner_options(cases: list[Case], options: dict[str, Any]) -> None:
    """Give each case the options its runtime reads; an option no runtime of the plan reads is an error."""
    from edgevit.runtimes import get_runtime

    keys = {c.runtime: get_runtime(c.runtime).runner.option_keys for c in cases}
    for key in options:
        if not any(key in known for known in keys.values()):
            offered = "; ".join(f"{rt}: {', '.join(k) or 'none'}" for rt, k in keys.items())
            raise ConfigError(f"runner option {key!r} is not read by the runtimes measured here ({offered})")
    for c in cases:
        c.options = {**c.options, **{k: v for k, v in options.items() if k in keys[c.runtime]}}


def _case(path: Path, model: str | None, runtime: str, target: str, precision: str, batch: int, threads: int,
          info: dict[str, Any], note: str = "") -> Case:
    from edgevit.bench.cache import artifact_size
    from edgevit.bench.synthetic import file_sha256

    name = model or _name_of(path)
    return Case(
        id=case_id(name, runtime, precision, batch, threads), artifact=str(path.resolve()), runtime=runtime,
        target=target, precision=precision, threads=threads, batch=batch, model=model,
        img_size=info.get("img_size"), params=info.get("params"), macs=info.get("macs"),
        model_size_bytes=artifact_size(path), artifact_sha256=file_sha256(path) if path.is_file() else "",
        runtime_note=note,
    )


def _file_cases(path: Path, runtime: str | None, precisions: list[str], batches: list[int], threads: int,
                used: list[str]) -> list[Case]:
    """An artifact file runs in its target's runtime; its precision and model come from its sidecar."""
    from edgevit.bench.cache import read_sidecar
    from edgevit.exporters import target_for_artifact
    from edgevit.runtimes import runtimes

    tgt = target_for_artifact(path)
    spec = runtimes().get(runtime or "")
    if runtime and runtime != tgt.runtime and not (spec and tgt.key in spec.reads):
        raise ConfigError(f"{path.name} is a {tgt.key} artifact, run by {tgt.runtime or 'no runtime here'}, "
                          f"not {runtime}")
    run_with = runtime or tgt.runtime
    if not tgt.runtime:
        raise UnavailableError(f"{path.name}: target {tgt.key} has no runtime on this machine")
    side = read_sidecar(path)
    precision = str(side.get("precision") or (precisions[0] if len(precisions) == 1 else "fp32"))
    batch = int(side.get("batch") or (batches[0] if len(batches) == 1 else 1))
    if run_with not in used:
        used.append(run_with)
    info = {"img_size": side.get("img_size"), "params": side.get("params"), "macs": side.get("macs")}
    model = side.get("model") if isinstance(side.get("model"), str) else None
    # An exported artifact is "this model at this precision": same case id as benching the model by
    # name, so a baseline made from names can judge an artifact put in its place (and vice versa).
    case = _case(path, model, run_with, tgt.key, precision, batch, threads, info)
    return [case]


def reference_case(threads: int, cache_root: Path | None = None) -> Case:
    """The machine-speed reference (a fixed synthetic ONNX conv stack, see `synthetic`)."""
    from edgevit.bench.cache import cache_dir
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
             on_result: Callable[[CaseResult], None] | None = None) -> BenchResults:
    load_start = load_average()
    results = run_cases(p.cases, protocol, progress=progress, on_result=on_result)
    setup = {
        "profile": p.profile.name, "profile_title": p.profile.title, "on_device": not host_mismatches(p.profile, p.host),
        "warnings": p.warnings, "runtimes": p.runtimes, "runtime_note": p.runtime_note,
        "precisions": p.precisions, "threads": p.threads, "batch": p.batch, "protocol": protocol.to_dict(),
        "suite": suite, "host_fingerprint": p.host.fingerprint,
    }
    return BenchResults(
        setup=setup, host=p.host.to_dict(), versions=versions(), cases=results, profile=p.profile.to_dict(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        load_average={"start": load_start, "end": load_average()},
    )


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
    log: Callable[[str], None] | None = None,
) -> BenchResults:
    """Benchmark model names and/or artifact files under a device profile, one fresh process per case.

    >>> res = benchmark(["cas_vit_xs"], profile="host", precision=["fp32", "int8"], threads=2)
    >>> res.cases[0].stats["median"]  # ms; raw samples in res.cases[0].samples_ms
    """
    protocol = Protocol(warmup=warmup, warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds)
    p = plan(inputs, profile=profile, runtime=runtime, precision=precision, threads=threads, batch=batch,
             img_size=img_size, strict=strict, reference=reference, cache_root=cache_root, log=log)
    return run_plan(p, protocol, progress=progress)
