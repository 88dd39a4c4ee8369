"""Run benchmark cases, one fresh subprocess each, and collect their results with the child's peak RSS.

The child's peak RSS comes from `os.wait4(pid, 0)` (its own rusage): `RUSAGE_CHILDREN` would be a
running maximum over every child so far and would blame one case for another's memory.
The wait4 happens in a tiny launcher process, because a child forked from a large parent inherits the
parent's RSS high-water mark on Linux (see `_LAUNCHER`).
Output goes to temporary files rather than pipes so that a chatty runtime cannot fill a pipe and
block the child while the parent sits in `wait4`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgevit.bench.protocol import Protocol, summarize
from edgevit.bench.stability import assess
from edgevit.bench.worker import RESULT_PREFIX, thread_env


@dataclass
class Case:
    """One thing to measure: an artifact in a runtime with threads and batch, plus what it came from."""

    id: str  # stable key across runs: what the regression gate matches on
    artifact: str
    runtime: str
    target: str
    precision: str
    threads: int
    batch: int = 1
    model: str | None = None
    img_size: int | None = None
    params: int | None = None
    macs: int | None = None
    model_size_bytes: int | None = None
    artifact_sha256: str = ""
    runtime_note: str = ""  # e.g. "fallback: ncnn is unavailable here"
    options: dict[str, Any] = field(default_factory=dict)
    reference: bool = False  # the gate's machine-speed reference case
    error: str = ""  # why it could not even be prepared (its export failed): reported, never run
    predicted: dict[str, Any] | None = None  # off the device: the profile's predicted latency for this case
    verified: dict[str, Any] | None = None  # the artifact's verification against PyTorch (from its record)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CaseResult:
    case: Case
    ok: bool
    error: str = ""
    stats: dict[str, float] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)
    load_ms: float | None = None
    first_ms: float | None = None
    warmup_runs: int = 0
    warmup_ms: float | None = None
    peak_rss_mb: float | None = None  # of the whole fresh process (interpreter + runtime + model)
    rss_start_mb: float | None = None  # the interpreter before the runtime was imported
    rss_loaded_mb: float | None = None  # after the artifact was loaded
    runtime_version: str = ""
    input_shape: list[int] = field(default_factory=list)
    output_shape: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    exit_code: int | None = None
    # where it ran: board temperature/clock before, during and after the case (remote runs; see
    # edgevit.bench.board), and the warnings they raised (governor not `performance`, clock dropped)
    conditions: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # the machine while it was timed (others' CPU, steal, load, spread) and whether it was stable
    # (edgevit.bench.stability); {} in results from before it was measured
    stability: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["case"] = self.case.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaseResult":
        d = dict(d)
        d["case"] = Case(**{k: v for k, v in d["case"].items() if k in Case.__dataclass_fields__})
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


# Linux keeps a process's peak RSS across exec, and a child forked from this (torch-sized) parent
# starts with the parent's high-water mark: wait4 on it would report the parent's RSS. So each case
# goes through this tiny launcher (a fresh interpreter of ~10 MB, importing nothing of ours): it spawns
# the worker, reaps it with os.wait4 and writes the worker's own ru_maxrss to a file.
_LAUNCHER = (
    "import os, sys\n"
    "out, argv = sys.argv[1], sys.argv[2:]\n"
    "pid = os.posix_spawn(argv[0], argv, os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(out, 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) & 255)\n"
)


def _maxrss_mb(ru_maxrss: int) -> float:
    return ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def worker_spec(case: Case, protocol: Protocol, *, seed: int = 0, artifact: str | None = None) -> dict[str, Any]:
    """The SPEC.json of `edgevit.bench.worker` for a case (`artifact`: its path where the worker runs)."""
    return {
        "artifact": artifact or case.artifact, "runtime": case.runtime, "threads": case.threads,
        "batch": case.batch, "img_size": case.img_size, "protocol": protocol.to_dict(), "options": case.options,
        "seed": seed,
    }


def run_case(case: Case, protocol: Protocol, *, timeout_s: float = 900.0, seed: int = 0) -> CaseResult:
    """Measure one case in a fresh `python -m edgevit.bench.worker` and return its result (never raises
    for a failing case: the error is data, so one broken artifact does not end a suite)."""
    spec = worker_spec(case, protocol, seed=seed)
    env = dict(os.environ) | thread_env(case.threads)
    env.pop("EDGEVIT_DEBUG", None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-") as tmp:
        spec_path, out_path, err_path, rss_path = (Path(tmp) / n for n in ("spec.json", "stdout", "stderr", "rss"))
        spec_path.write_text(json.dumps(spec))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _LAUNCHER, str(rss_path), sys.executable, "-m", "edgevit.bench.worker",
                 str(spec_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True,
            )
            timed_out = threading.Event()

            def _kill() -> None:
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout_s, _kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            except BaseException:  # Ctrl-C: the worker has its own session, so take it down too
                _kill()
                os.wait4(proc.pid, 0)
                raise
            finally:
                timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen consistent
        rss_text = rss_path.read_text().strip() if rss_path.exists() else ""
        if rss_text.isdigit():
            usage_maxrss = int(rss_text)
        else:  # the launcher died before the worker ended: only its own (inflated) figure is left
            usage_maxrss = usage.ru_maxrss
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
    wall = time.perf_counter() - started
    peak = round(_maxrss_mb(usage_maxrss), 2)
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(RESULT_PREFIX)), None)
    return result_from_worker(case, line, stderr, exit_code=proc.returncode, peak_rss_mb=peak, wall_s=wall,
                              timed_out=timeout_s if timed_out.is_set() else None)


def result_from_worker(case: Case, line: str | None, stderr: str, *, exit_code: int | None,
                       peak_rss_mb: float | None, wall_s: float, timed_out: float | None = None) -> CaseResult:
    """A CaseResult from the worker's RESULT line (None when it printed none), wherever it ran."""
    peak, wall = peak_rss_mb, wall_s
    if timed_out is not None:
        return CaseResult(case, False, f"timed out after {timed_out:.0f} s", peak_rss_mb=peak, wall_s=wall,
                          exit_code=exit_code)
    if line is None:
        tail = (stderr.strip().splitlines() or [f"exit code {exit_code}"])[-1]
        return CaseResult(case, False, f"worker crashed: {tail}", peak_rss_mb=peak, wall_s=wall,
                          exit_code=exit_code)
    data = json.loads(line[len(RESULT_PREFIX):])
    if not data.get("ok"):
        return CaseResult(case, False, data.get("error", "unknown error"), peak_rss_mb=peak, wall_s=wall,
                          exit_code=exit_code)
    samples_ms = [ns / 1e6 for ns in data["samples_ns"]]
    machine = assess(data.get("stability"), samples_ms)
    return CaseResult(
        case, True, stats=summarize(samples_ms), samples_ms=[round(s, 6) for s in samples_ms],
        load_ms=data["load_ms"], first_ms=data["first_ms"], warmup_runs=data["warmup_runs"],
        warmup_ms=data["warmup_ms"], peak_rss_mb=peak, rss_start_mb=data["rss_start_mb"],
        rss_loaded_mb=data["rss_loaded_mb"], runtime_version=data.get("runtime_version", ""),
        input_shape=data["input_shape"], output_shape=data["output_shape"], wall_s=wall,
        exit_code=exit_code, stability=machine, warnings=list(machine["reasons"]),
    )


# Runs one case and returns its result, never raising for a failing case: `run_case` here, a board's
# `RemoteExecutor.run_case` over SSH (edgevit.bench.remote).
CaseExecutor = Callable[..., CaseResult]


def run_cases(cases: Sequence[Case], protocol: Protocol, *, progress: bool = False,
              on_result: Callable[[CaseResult], None] | None = None, timeout_s: float = 900.0,
              executor: CaseExecutor | None = None) -> list[CaseResult]:
    """Run cases one after another (never in parallel: they would share the cores they measure).
    `executor(case, protocol, timeout_s=...)` runs each one (default: `run_case`, here). A case that could
    not be prepared is a failed result; Ctrl-C or SIGTERM marks the rest not run and keeps what was measured.
    `progress` is kept for callers; steps always go to `edgevit.progress` (shown by the CLI)."""
    from edgevit import progress as steps

    run_one = executor or run_case
    results: list[CaseResult] = []
    try:
        with steps.step(f"bench {len(cases)} case(s)", total=len(cases)) as advance:
            for i, case in enumerate(cases, 1):
                with steps.step(f"case {i}/{len(cases)}: {case.id}"):
                    result = CaseResult(case, False, case.error) if case.error else run_one(
                        case, protocol, timeout_s=timeout_s)
                results.append(result)
                if on_result:
                    on_result(result)
                advance(1)
    except KeyboardInterrupt:  # stop, but keep (and let the caller write) what was measured
        results += [CaseResult(c, False, "not run: interrupted") for c in cases[len(results):]]
    return results
