"""A fleet of boards: an inventory file, one queue per board run in parallel, results merged per device.

```yaml
# devices.yaml
ssh_config: ~/.ssh/config      # optional, for every device (relative paths: to this file)
cooldown: 5                    # optional default, seconds between cases on a board
devices:
  - name: tinker               # how results and tables name the board
    ssh: pi@tinker.local       # ssh destination: user@host, host:port or an ~/.ssh/config alias
    profile: arm-a17           # device profile (edgevit devices)
    python: /home/pi/.venvs/edgevit/bin/python   # optional, default python3
    runtime_options: {powersave: 2}              # optional, over the profile's
    threads: 4                 # optional, default the profile's
    cooldown: 10               # optional
    notes: RK3288, passive heatsink              # optional
```

Each board runs its own cases one at a time (never two benchmarks on one board); the boards run in
parallel. Every board's results are a BenchResults with that board's facts. The combined table puts
each device in its own column (labelled with its profile and CPU) and never one device's figure in
another's column; emulated boards appear without numbers, since they have no device timing.
Beyond a handful of boards use CI instead (.github/workflows/device-fleet.yml, docs/boards.md).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import ConfigError, EdgeVitError

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults
    from edgevit.bench.protocol import Protocol

_TOP = {"devices": list, "ssh_config": str, "cooldown": (int, float)}
_DEVICE = {"name": str, "ssh": str, "profile": str, "python": str, "runtime_options": dict, "threads": int,
           "cooldown": (int, float), "notes": str, "ssh_config": str, "cache": str}
_REQUIRED = ("name", "ssh", "profile")


@dataclass(frozen=True)
class Device:
    name: str
    ssh: str
    profile: str
    python: str = "python3"
    runtime_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    cooldown: float = 0.0
    notes: str = ""
    ssh_config: Path | None = None
    cache: str = ""

    def target(self) -> Any:
        from edgevit.bench.remote import SshTarget

        return SshTarget(self.ssh, ssh_config=self.ssh_config, python=self.python, cache=self.cache, name=self.name)


def _check(where: str, data: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, value in data.items():
        if key not in schema:
            raise ConfigError(f"{where}: unknown field {key!r}; allowed: {', '.join(schema)}")
        types = schema[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise ConfigError(f"{where}: field {key!r} must be {names}, got {value!r}")


def load_fleet(path: str | Path) -> list[Device]:
    """Read and validate an inventory; every problem is a one-line ConfigError naming file and field."""
    import re

    import yaml

    from edgevit.bench.profiles import load_profile

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{p}: not valid YAML" + (f" at line {mark.line + 1}" if mark else "")) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: an inventory is a mapping with a 'devices' list")
    _check(str(p), data, _TOP)
    if not data.get("devices"):
        raise ConfigError(f"{p}: 'devices' must list at least one board")
    base = p.resolve().parent

    def _path(text: str | None) -> Path | None:
        return None if not text else (base / Path(text).expanduser()).resolve()

    devices: list[Device] = []
    for i, raw in enumerate(data["devices"]):
        where = f"{p} devices[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: a device is a mapping (name, ssh, profile, ...)")
        _check(where, raw, _DEVICE)
        for key in _REQUIRED:
            if not raw.get(key):
                raise ConfigError(f"{where}: missing required field {key!r}")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", raw["name"]):
            raise ConfigError(f"{where}: name {raw['name']!r} must be letters, digits, '-', '_' or '.'")
        if raw.get("threads") is not None and raw["threads"] < 1:
            raise ConfigError(f"{where}: threads must be >= 1, got {raw['threads']}")
        cooldown = float(raw.get("cooldown", data.get("cooldown", 0)))
        if cooldown < 0:
            raise ConfigError(f"{where}: cooldown must be >= 0 seconds, got {cooldown}")
        try:
            load_profile(raw["profile"])
            dev = Device(name=raw["name"], ssh=raw["ssh"], profile=raw["profile"], python=raw.get("python", "python3"),
                         runtime_options=dict(raw.get("runtime_options") or {}), threads=raw.get("threads"),
                         cooldown=cooldown, notes=raw.get("notes", ""),
                         ssh_config=_path(raw.get("ssh_config") or data.get("ssh_config")), cache=raw.get("cache", ""))
            dev.target()  # validates the destination, python and cache
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        devices.append(dev)
    names = [d.name for d in devices]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ConfigError(f"{p}: two devices are named {dup!r}")
    hosts = [(d.ssh, d.ssh_config) for d in devices]
    same = next((h for h in hosts if hosts.count(h) > 1), None)
    if same:
        raise ConfigError(f"{p}: two devices are the same board ({same[0]}): one board runs one benchmark at a time")
    return devices


# ---------------------------------------------------------------- running
@dataclass
class BoardOutcome:
    """One device of a fleet run: its results, or why it produced none."""

    device: Device
    results: "BenchResults | None" = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.results is not None and self.results.ok and not self.error


def run_fleet(
    devices: Sequence[Device],
    *,
    inputs: Sequence[str | Path] = (),
    suite: str | Path | None = None,
    protocol: "Protocol | dict[str, Any] | None" = None,
    precision: Sequence[str] | None = None,
    strict: bool = False,
    reference: bool = False,
    timeout_s: float = 900.0,
    progress: bool = False,
    cache_root: Path | None = None,
) -> list[BoardOutcome]:
    """Connect to every board (in parallel), plan each one's cases here (exports are cached, so a model
    is exported once for all boards), then run every board's queue in parallel, one case at a time."""
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import Protocol, protocol_from
    from edgevit.bench.remote import RemoteExecutor
    from edgevit.bench.suites import load_suite, plan_suite

    if bool(inputs) == bool(suite):
        raise ConfigError("a fleet run takes a --suite or inputs (model names, artifacts), one of the two")
    s = load_suite(suite) if suite else None
    # a Protocol is used as given; a dict holds CLI overrides of the suite's protocol (or the default)
    proto = protocol if isinstance(protocol, Protocol) else protocol_from(s.protocol if s else None, **(protocol or {}))
    outcomes = [BoardOutcome(d) for d in devices]
    execs: dict[str, RemoteExecutor] = {}

    def _open(o: BoardOutcome) -> None:
        ex = RemoteExecutor(o.device.target(), cooldown_s=o.device.cooldown, local_cache=cache_root)
        try:
            ex.open()
            execs[o.device.name] = ex
        except EdgeVitError as exc:
            o.error = str(exc)

    with ThreadPoolExecutor(max_workers=len(outcomes)) as pool:
        list(pool.map(_open, outcomes))
    plans: dict[str, Any] = {}
    try:
        for o in outcomes:  # sequential: exports happen here, once per artifact
            ex = execs.get(o.device.name)
            if ex is None:
                continue
            try:
                if s is not None:
                    plans[o.device.name] = plan_suite(s, profile=o.device.profile, threads=o.device.threads,
                                                      strict=strict, cache_root=cache_root,
                                                      options=o.device.runtime_options or None, executor=ex)
                else:
                    plans[o.device.name] = plan(inputs, profile=o.device.profile, precision=precision,
                                                threads=o.device.threads, strict=strict, reference=reference,
                                                cache_root=cache_root,
                                                options=o.device.runtime_options or None, executor=ex)
            except EdgeVitError as exc:
                o.error = str(exc)
        _run_queues(outcomes, plans, execs, proto, timeout_s, progress, s.name if s else "", run_plan)
    finally:
        for ex in execs.values():
            ex.close()
    return outcomes


def _run_queues(outcomes: list[BoardOutcome], plans: dict[str, Any], execs: dict[str, Any], proto: "Protocol",
                timeout_s: float, progress: bool, suite: str, run_plan: Callable[..., Any]) -> None:
    """Every planned board's queue in its own thread; a Rich bar per board on stderr. Ctrl-C stops
    every board (its running case is killed there) and keeps what was measured."""
    from concurrent.futures import wait
    todo = [o for o in outcomes if o.device.name in plans]
    bar = None
    tasks: dict[str, Any] = {}
    if progress and todo:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]{task.fields[board]}[/]"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        for o in todo:
            tasks[o.device.name] = bar.add_task("", total=len(plans[o.device.name].cases), board=o.device.name)
        bar.start()
    lock = threading.Lock()

    def _one(o: BoardOutcome) -> None:
        def _done(_: Any) -> None:
            if bar is not None:
                with lock:
                    bar.advance(tasks[o.device.name])

        try:
            o.results = run_plan(plans[o.device.name], proto, suite=suite, on_result=_done, timeout_s=timeout_s)
        except EdgeVitError as exc:
            o.error = str(exc)

    pool = ThreadPoolExecutor(max_workers=len(todo) or 1)
    futures = [pool.submit(_one, o) for o in todo]
    try:
        wait(futures)
    except KeyboardInterrupt:
        for ex in execs.values():
            ex.cancel()
        wait(futures)
    finally:
        pool.shutdown()
        if bar is not None:
            bar.stop()
    for f in futures:
        f.result()  # a bug in a board's thread surfaces here


# ---------------------------------------------------------------- merged views
def device_name(res: "BenchResults") -> str:
    """A results file's device: the board's name, else profile@hostname (a CI runner on the board)."""
    board = (res.setup.get("board") or {}).get("name")
    return str(board) if board else f"{res.setup.get('profile')}@{res.host.get('hostname', '?')}"


def _column(name: str, res: "BenchResults") -> str:
    kind = res.setup.get("measured_on", "local")
    tag = "EMULATED, no timing" if kind == "emulated" else f"{res.host.get('cpu')} x{res.host.get('cores')}"
    return f"{name} ({res.setup.get('profile')}; {tag}; t{res.setup.get('threads')})"


def _key(r: Any) -> str:
    name = r.case.model or r.case.id.split("/")[0]
    return f"{name} {r.case.precision} b{r.case.batch}"


def combined_rows(named: Sequence[tuple[str, "BenchResults"]]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per model/precision/batch, one column per device (median ms and runtime;
    'emulated' without a number for emulated boards; the error for a failed case)."""
    keys: list[str] = []
    cells: dict[tuple[str, str], list[str]] = {}
    for name, res in named:
        emulated = res.setup.get("measured_on") == "emulated"
        for r in res.cases:
            if r.case.reference:
                continue
            k = _key(r)
            if k not in keys:
                keys.append(k)
            if not r.ok:
                text = f"failed: {r.error}"
            elif emulated:
                text = f"ran ({r.case.runtime}, emulated)"
            else:
                text = f"{r.stats['median']:.2f} ms ({r.case.runtime})"
            cells.setdefault((k, name), []).append(text)
    header = ["model precision batch", *(_column(n, res) for n, res in named)]
    rows = [[k, *(" / ".join(cells.get((k, n), ["—"])) for n, _ in named)] for k in keys]
    return header, rows


def combined_markdown(named: Sequence[tuple[str, "BenchResults"]], errors: Sequence[tuple[str, str]] = ()) -> str:
    """The fleet's combined table: median latency per model per device, each device its own column."""
    header, rows = combined_rows(named)
    lines = ["## edgevit fleet: median latency per model per device", "",
             "Each column was measured on its own board, with that board's runtime and threads; compare rows "
             "within a column, and columns only as different devices.", ""]
    for name, res in named:
        lines.append(f"- **{name}**: {_where(res)}")
    for name, err in errors:
        lines.append(f"- **{name}**: no results: {err}")
    lines += ["", "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _where(res: "BenchResults") -> str:
    from edgevit.bench.tables import host_line

    v = res.versions
    rts = ", ".join(f"{rt} {v.get(rt, '?')}" for rt in res.setup.get("runtimes", []))
    return f"{host_line(res)}; {rts}; created {res.created}"


def combined_table(named: Sequence[tuple[str, "BenchResults"]]) -> Any:
    from rich.table import Table

    header, rows = combined_rows(named)
    table = Table(title="edgevit fleet — median latency per model per device (one column per device)",
                  header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def plot_fleet(named: Sequence[tuple[str, "BenchResults"]], target: str | Path) -> Path:
    """Grouped bars: median latency (p10-p90 bar) per model, one bar per device; emulated boards and
    failed cases are left out (named in the caption)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from edgevit.errors import UnavailableError

        raise UnavailableError("--plot needs matplotlib: pip install 'edgevit[bench]'") from None
    from edgevit.bench.protocol import percentile

    path = Path(target)
    if path.is_dir() or str(target).endswith("/"):
        path.mkdir(parents=True, exist_ok=True)
        path = path / "fleet_latency.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    real = [(n, r) for n, r in named if r.setup.get("measured_on") != "emulated"]
    left_out = [f"{n} (emulated)" for n, r in named if r.setup.get("measured_on") == "emulated"]
    keys: list[str] = []
    for _, res in real:
        for r in res.cases:
            if r.ok and not r.case.reference and _key(r) not in keys:
                keys.append(_key(r))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(keys) * max(1, len(real)) / 2 + 3), 5))
    width = 0.8 / max(1, len(real))
    for j, (name, res) in enumerate(real):
        by_key = {_key(r): r for r in res.cases if r.ok and not r.case.reference}
        xs, med, lo, hi = [], [], [], []
        for i, k in enumerate(keys):
            r = by_key.get(k)
            if r is None:
                continue
            s = sorted(r.samples_ms)
            xs.append(i + (j - (len(real) - 1) / 2) * width)
            med.append(r.stats["median"])
            lo.append(r.stats["median"] - percentile(s, 10))
            hi.append(percentile(s, 90) - r.stats["median"])
        ax.bar(xs, med, width, yerr=[lo, hi], capsize=3, label=_column(name, res))
        left_out += [f"{name}: {r.case.id}" for r in res.cases if not r.ok]
    ax.set_xticks(range(len(keys)), keys, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("median latency, ms (bar: p10-p90)")
    if keys and all(not math.isnan(r.stats.get("median", math.nan)) for _, res in real for r in res.cases if r.ok):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    if real:
        ax.legend(fontsize=7)
    ax.set_title("latency per model per device (each bar measured on its own board)", fontsize=10)
    if left_out:
        fig.text(0.01, 0.01, "not plotted: " + ", ".join(left_out), fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
