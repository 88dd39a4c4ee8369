"""What runs on a board (from the pushed bundle, see `bundle`): its facts, the per-case launcher, cleanup.

`python3 edgevit-board.pyz facts` prints the board's facts as JSON: the same `HostInfo` fields a local
run records (from `profiles.detect_host`, run *there*), plus CPU features, cpufreq governor and clock,
thermal zones, load, python and the runtimes the registry finds (probes never import the runtime).

`python3 edgevit-board.pyz launch ...` runs one case: it spawns `python3 edgevit-board.pyz worker SPEC`
in its own session (the same worker as a local run), reaps it with `os.wait4` for its own peak RSS
(the local runner's launcher trick), samples clock and temperature while it runs and prints one
BOARD_PREFIX JSON line. It kills the worker's process group when the case passes its deadline *or*
when its stdin reaches EOF: stdin is the SSH channel, so a dropped connection or a killed local ssh
ends the case on the board too. The worker dies with the launcher (PR_SET_PDEATHSIG), and the
launcher leaves a pid file that `cleanup` kills as a last resort. One board lock (flock) per case
keeps two benchmarks from ever sharing a board.

Stdlib only at import time: the launcher must stay a small process (its children inherit its RSS
high-water mark), and `facts` must work on a board without numpy.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

BOARD_PREFIX = "EDGEVIT_BOARD_RESULT "
LOCK_NAME = "board.lock"
_CPUFREQ = Path("/sys/devices/system/cpu/cpufreq")
_THERMAL = Path("/sys/class/thermal")


# ---------------------------------------------------------------- facts
def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _policies() -> list[Path]:
    """cpufreq policy directories (one per cluster on big.LITTLE), else cpu0's own cpufreq."""
    found = sorted(_CPUFREQ.glob("policy*")) if _CPUFREQ.is_dir() else []
    if not found and Path("/sys/devices/system/cpu/cpu0/cpufreq").is_dir():
        found = [Path("/sys/devices/system/cpu/cpu0/cpufreq")]
    return found


def _per_policy(name: str, scale: float = 1.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in _policies():
        text = _read(p / name)
        if text is None:
            continue
        key = p.name if p.name.startswith("policy") else "cpu0"
        try:
            out[key] = round(int(text) / scale) if scale != 1.0 else text
        except ValueError:
            out[key] = text
    return out


def clocks_mhz() -> dict[str, int]:
    """Current clock of each cpufreq policy in MHz (empty where the kernel exposes no cpufreq)."""
    return _per_policy("scaling_cur_freq", 1000.0)


def temperatures_c() -> dict[str, float]:
    """Every thermal zone's temperature in °C, keyed by its type (soc-thermal, cpu-thermal, ...)."""
    out: dict[str, float] = {}
    for zone in sorted(_THERMAL.glob("thermal_zone*")) if _THERMAL.is_dir() else []:
        raw = _read(zone / "temp")
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        kind = _read(zone / "type") or zone.name
        key = kind if kind not in out else f"{kind}.{zone.name}"
        out[key] = round(int(raw) / 1000.0, 1)
    return out


def conditions() -> dict[str, Any]:
    """What can change a latency between two cases: temperatures and clocks, now."""
    return {"time": time.time(), "thermal_c": temperatures_c(), "freq_mhz": clocks_mhz()}


def _cpu_features() -> list[str]:
    text = _read(Path("/proc/cpuinfo")) or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("features", "flags"):
            return value.split()
    return []


def userland_arch(machine: str) -> str:
    """The architecture this python runs as: a 32-bit ARM userland on a 64-bit kernel says aarch64 in
    uname but is armv7l for wheels and kernels (Raspberry Pi OS 32-bit on a Pi 4)."""
    if machine in ("aarch64", "armv8l", "arm64") and struct.calcsize("P") == 4:
        return "armv7l"
    return machine


def _runtimes() -> tuple[dict[str, Any] | None, str]:
    """Each registered runtime's availability on this board, or why the registry cannot load here."""
    try:
        from edgevit.backends import runtimes

        specs = runtimes()  # loads every backend folder: the runners import numpy at module level
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    out = {}
    for key, spec in specs.items():
        try:
            a = spec.probe()
            out[key] = {"available": a.available, "version": a.version, "reason": a.reason}
        except Exception as exc:  # noqa: BLE001 - a broken probe must not hide the others
            out[key] = {"available": False, "version": "", "reason": f"probe failed: {type(exc).__name__}: {exc}"}
    return out, ""


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return ""


def facts() -> dict[str, Any]:
    """The board as a result records it: HostInfo fields (read here), then the board's own extras."""
    import importlib.util
    import platform
    import sysconfig

    from edgevit import __version__
    from edgevit.bench.profiles import detect_host

    host = detect_host().to_dict()
    machine = os.uname().machine
    host["arch"] = userland_arch(machine)
    runtimes, runtimes_error = _runtimes()
    stdlib = sysconfig.get_paths().get("stdlib", "")
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    host.update({
        "machine": machine,  # os.uname() as this python sees it (qemu-user reports the guest's)
        "kernel": platform.release(),
        "features": _cpu_features(),
        "governor": _per_policy("scaling_governor"),
        "freq_mhz": clocks_mhz(),
        "max_freq_mhz": _per_policy("cpuinfo_max_freq", 1000.0),
        "thermal_c": temperatures_c(),
        "load_average": load,
        "python_executable": sys.executable,
        "numpy": _dist_version("numpy") if importlib.util.find_spec("numpy") else "",
        "pip": importlib.util.find_spec("pip") is not None,
        "in_venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix),
        "externally_managed": bool(stdlib) and Path(stdlib, "EXTERNALLY-MANAGED").exists(),
        "edgevit": __version__,
        "runtimes": runtimes,
        "runtimes_error": runtimes_error,
    })
    return host


# ---------------------------------------------------------------- hygiene (pure data, used by the controller)
def governor_warning(governor: dict[str, str]) -> str:
    """A warning when a cpufreq policy is not on `performance` ('' when all are, or none is exposed)."""
    off = {k: v for k, v in governor.items() if v != "performance"}
    if not off:
        return ""
    which = ", ".join(f"{k} {v}" for k, v in sorted(off.items()))
    return (f"cpufreq governor is not 'performance' ({which}): the clock moves with load, so latencies vary "
            "between cases; on the board: echo performance | sudo tee "
            "/sys/devices/system/cpu/cpufreq/policy*/scaling_governor")


def case_warnings(before: dict[str, Any], during: dict[str, Any], after: dict[str, Any],
                  governor: dict[str, str], *, drop: float = 0.10, hot_c: float = 80.0) -> list[str]:
    """Throttling seen around one case: a clock that fell by more than `drop` while the governor should
    hold it, or a zone at or above `hot_c`."""
    out = []
    for policy, start in (before.get("freq_mhz") or {}).items():
        if governor.get(policy, "performance") not in ("performance", "userspace"):
            continue  # a scaling governor moves the clock on purpose: governor_warning says so once
        lows = [v for v in ((during.get("freq_mhz_min") or {}).get(policy), (after.get("freq_mhz") or {}).get(policy))
                if isinstance(v, (int, float))]
        highs = [v for v in (start, (during.get("freq_mhz_max") or {}).get(policy)) if isinstance(v, (int, float))]
        if lows and highs and min(lows) < (1 - drop) * max(highs):
            out.append(f"clock dropped during the case: {policy} {max(highs)} -> {min(lows)} MHz (throttling)")
    temps = [t for t in (during.get("thermal_c_max"), *(after.get("thermal_c") or {}).values())
             if isinstance(t, (int, float))]
    if temps and max(temps) >= hot_c:
        out.append(f"board at {max(temps):.0f} °C during the case (throttling likely; cool it or add --cooldown)")
    return out


# ---------------------------------------------------------------- the per-case launcher
def _set_pdeathsig() -> None:
    """Ask Linux to SIGKILL this process when its parent (the launcher) dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Sampler(threading.Thread):
    """Samples clocks and temperatures while the case runs (min/max per policy, hottest zone)."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.low: dict[str, int] = {}
        self.high: dict[str, int] = {}
        self.hot: float | None = None
        self.samples = 0

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            for k, v in clocks_mhz().items():
                self.low[k] = min(v, self.low.get(k, v))
                self.high[k] = max(v, self.high.get(k, v))
            temps = list(temperatures_c().values())
            if temps:
                self.hot = max(temps + ([self.hot] if self.hot is not None else []))
            self.samples += 1

    def summary(self) -> dict[str, Any]:
        return {"freq_mhz_min": self.low, "freq_mhz_max": self.high, "thermal_c_max": self.hot,
                "samples": self.samples, "interval_s": self.interval}


def _lock(path: Path, wait_s: float) -> Any:
    """The board lock (one case at a time on a board, whoever runs it), or None when it stays busy."""
    import fcntl

    f = open(path, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                return None
            time.sleep(0.2)


def _tail(path: Path, limit: int = 400) -> str:
    text = _read(path) or ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][-limit:] if lines else ""


def launch(args: dict[str, Any]) -> dict[str, Any]:
    """Run one case (see the module docstring); returns what the BOARD_PREFIX line carries."""
    from edgevit.bench.worker import RESULT_PREFIX, thread_env

    run_dir, name = Path(args["run_dir"]), args["name"]
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path, err_path, pid_path = (run_dir / f"{name}.{ext}" for ext in ("spec.json", "out", "err", "pid"))
    spec = json.loads(args["spec"])
    spec_path.write_text(json.dumps(spec))
    lock = _lock(Path(args["lock"]), float(args.get("lock_wait", 30)))
    if lock is None:
        return {"error": "the board is busy: another edgevit case holds its lock (two benchmarks never share "
                         "a board); try again when it is done"}
    env = {k: v for k, v in os.environ.items() if k != "EDGEVIT_DEBUG"}
    env.update(thread_env(int(spec.get("threads") or 1)))
    env["EDGEVIT_BOARD_PARENT"] = str(os.getpid())
    python, bundle = args["python"], args["bundle"]
    before = conditions()
    sampler = _Sampler(float(args.get("sample_s", 0.5)))
    started = time.monotonic()
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(out_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
               (os.POSIX_SPAWN_OPEN, 2, str(err_path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    try:
        pid = os.posix_spawn(python, [python, bundle, "worker", str(spec_path)], env, file_actions=actions,
                             setsid=True)
    except OSError as exc:
        return {"error": f"cannot start {python} on the board: {exc.strerror}"}
    pid_path.write_text(f"{pid}\n")
    why: list[str] = []

    def _end(reason: str) -> None:
        if not why:
            why.append(reason)
        _kill_group(pid)

    def _watch_stdin() -> None:  # EOF: the SSH channel closed (connection lost, local ssh killed)
        try:  # the raw fd: a buffered sys.stdin would hold its lock and stall interpreter shutdown
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        _end("lost")

    threading.Thread(target=_watch_stdin, daemon=True).start()
    timer = threading.Timer(float(args["timeout"]), _end, ("timeout",))
    timer.daemon = True
    timer.start()
    sampler.start()
    try:
        # wait without reaping, so the worker's pid (= its group id) cannot be reused before the group
        # is killed; then reap it with wait4 for its own rusage
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        timer.cancel()
        _kill_group(pid)  # whatever the worker started in its session goes with it
        _, status, usage = os.wait4(pid, 0)
    finally:
        timer.cancel()
        sampler.stop.set()
        lock.close()
    wall = time.monotonic() - started
    out_text = _read(out_path) or ""
    line = next((ln for ln in reversed(out_text.splitlines()) if ln.startswith(RESULT_PREFIX)), None)
    result = {
        "worker_line": line, "stderr_tail": _tail(err_path), "exit_code": os.waitstatus_to_exitcode(status),
        "rss_kb": usage.ru_maxrss, "wall_s": wall, "timed_out": why == ["timeout"], "lost": why == ["lost"],
        "before": before, "during": sampler.summary(), "after": conditions(),
    }
    for p in (spec_path, out_path, err_path, pid_path):
        try:
            p.unlink()
        except OSError:
            pass
    return result


def _alive_in(pid: int, run_dir: Path) -> bool:
    """Whether `pid` is still one of this run's processes (not a recycled pid of something else)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(run_dir) in cmd


def cleanup(run_dir: Path, cache: Path | None = None, *, stale_s: float = 86400.0) -> list[int]:
    """Kill what a run's pid files still name, remove the run directory; with `cache`, also remove
    leftovers of runs that lost their connection (idle for `stale_s`) and half-pushed uploads."""
    import shutil

    killed = []
    for pid_file in sorted(run_dir.glob("*.pid")) if run_dir.is_dir() else []:
        try:
            pid = int((_read(pid_file) or "0").split()[0])
        except (ValueError, IndexError):
            continue
        if pid > 1 and _alive_in(pid, run_dir):
            _kill_group(pid)
            killed.append(pid)
    shutil.rmtree(run_dir, ignore_errors=True)
    if cache is not None:
        now = time.time()
        for old in [*cache.glob("runs/*"), *cache.glob("artifacts/*.part-*"), *cache.glob("bundles/*.part-*")]:
            try:
                if now - old.stat().st_mtime > (stale_s if old.parent.name == "runs" else 3600):
                    if old.is_dir():
                        killed += cleanup(old)
                    else:
                        old.unlink()
            except OSError:
                continue
    return killed


# ---------------------------------------------------------------- entry
def _check_bundle() -> str:
    """'' when `edgevit` comes from the bundle being run, else why not (another one shadows it)."""
    import edgevit

    bundle = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    here = os.path.abspath(edgevit.__file__ or "")
    return "" if bundle and here.startswith(bundle) else f"edgevit imported from {here}, not from {bundle}"


def main(argv: list[str]) -> int:
    """`facts` | `launch KEY=VALUE...` | `worker SPEC.json` | `cleanup RUN_DIR [CACHE]`."""
    if not argv:
        sys.stderr.write("usage: edgevit-board.pyz facts|launch|worker|cleanup ...\n")
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "worker":
        _set_pdeathsig()
        parent = os.environ.get("EDGEVIT_BOARD_PARENT")
        if parent and os.getppid() != int(parent):  # the launcher died before prctl took effect
            return 1
        from edgevit.bench.worker import main as worker_main

        return worker_main(rest)
    shadow = _check_bundle()
    if cmd == "facts":
        data = facts()
        data["bundle_error"] = shadow
        print(BOARD_PREFIX + json.dumps(data))
        return 0
    if cmd == "launch":
        args = dict(a.split("=", 1) for a in rest)
        result = {"error": shadow} if shadow else launch(args)
        try:
            sys.stdout.write("\n" + BOARD_PREFIX + json.dumps(result) + "\n")
            sys.stdout.flush()
        except OSError:  # the connection is gone: nobody reads this any more
            pass
        os._exit(0)  # now: the stdin watcher thread still blocks in read()
    if cmd == "cleanup":
        killed = cleanup(Path(rest[0]), Path(rest[1]) if len(rest) > 1 else None)
        print(BOARD_PREFIX + json.dumps({"killed": killed}))
        return 0
    sys.stderr.write(f"unknown command {cmd!r}\n")
    return 2
