"""Read the latency tables of ncnn's `benchmark/README.md` (benchncnn output pasted per board).

The README is a list of `### <board>` sections, each with one or more pasted runs of
`benchncnn [loops] [threads] [powersave] [gpu] [cooling]`: a header (`num_threads = 4`,
`gpu_device = -1`, ...) then one line per network, `<name>  min = ..  max = ..  avg = ..` in ms.
We keep CPU runs only (gpu_device < 0, or no GPU named), split `<net>_int8` / `<net>-int8` into the
network and precision `int8`, and give every row the line it came from, so each figure can be cited.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

_HEADING = re.compile(r"^###\s+(?P<board>.+?)\s*$")
_ROW = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s+min\s*=\s*(?P<min>[\d.]+)\s+max\s*=\s*(?P<max>[\d.]+)"
                  r"\s+avg\s*=\s*(?P<avg>[\d.]+)\s*$")
_HEADER = re.compile(r"^\s*(?P<key>loop_count|num_threads|powersave|gpu_device|cooling_down)\s*=\s*(?P<value>-?\d+)")
_COMMAND = re.compile(r"benchncnn(?:\.exe)?\s+(?P<args>[-\d\s]+)")
_VULKAN_INFO = re.compile(r"^\s*\[\d+ [^\]]+\]")  # "[0 Mali-T760]  queueC=..." printed for a GPU device
# Older README rows spell some networks differently from today's benchncnn.
_ALIASES = {"squeezenet-ssd": "squeezenet_ssd", "mobilenet-ssd": "mobilenet_ssd", "mobilenet-yolo": "mobilenet_yolo",
            "mobilenetv2-yolov3": "mobilenetv2_yolov3"}


@dataclass(frozen=True)
class BenchRow:
    """One network's latency in one run (milliseconds, as benchncnn prints them)."""

    network: str  # today's benchncnn name without the int8 suffix: mobilenet_ssd
    precision: str  # fp32 (ncnn's defaults) | int8
    min_ms: float
    max_ms: float
    avg_ms: float
    line: int  # 1-based line in the README text
    published_name: str = ""  # as printed: mobilenet_ssd_int8, squeezenet-int8


@dataclass
class BenchRun:
    """One pasted benchncnn run on one board."""

    board: str  # the section heading as published
    threads: int | None
    powersave: int | None
    gpu_device: int | None
    loop_count: int | None
    command: str
    line: int  # first line of the run
    rows: list[BenchRow] = field(default_factory=list)

    @property
    def cpu(self) -> bool:
        return self.gpu_device is None or self.gpu_device < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_name(name: str) -> tuple[str, str]:
    """`mobilenet_int8` -> ("mobilenet", "int8"); `squeezenet-ssd` -> ("squeezenet_ssd", "fp32")."""
    for suffix in ("_int8", "-int8"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            return _ALIASES.get(base, base), "int8"
    return _ALIASES.get(name, name), "fp32"


def _command_args(line: str) -> list[int]:
    m = _COMMAND.search(line)
    if not m:
        return []
    out = []
    for tok in m.group("args").split():
        try:
            out.append(int(tok))
        except ValueError:
            break
    return out


def parse_benchncnn_readme(text: str, *, cpu_only: bool = True) -> list[BenchRun]:
    """Every run in the README text, in order; GPU runs dropped unless `cpu_only=False`."""
    runs: list[BenchRun] = []
    board = ""
    run: BenchRun | None = None
    pending_cmd, pending_gpu_info = "", False

    def start(line_no: int) -> BenchRun:
        args = _command_args(pending_cmd)
        r = BenchRun(board=board, threads=args[1] if len(args) > 1 else None,
                     powersave=args[2] if len(args) > 2 else None,
                     gpu_device=args[3] if len(args) > 3 else (0 if pending_gpu_info else None),
                     loop_count=args[0] if args else None, command=pending_cmd.strip(), line=line_no)
        runs.append(r)
        return r

    for no, line in enumerate(text.splitlines(), start=1):
        if m := _HEADING.match(line):
            board, run, pending_cmd, pending_gpu_info = m.group("board"), None, "", False
            continue
        if not board:
            continue
        if "benchncnn" in line and _command_args(line):
            pending_cmd, pending_gpu_info, run = line, False, None
            continue
        if _VULKAN_INFO.match(line):
            pending_gpu_info = True
            continue
        if m := _HEADER.match(line):
            key, value = m.group("key"), int(m.group("value"))
            if run is None or run.rows:  # a header after rows starts the next run
                run = start(no)
            if key == "num_threads":
                run.threads = value
            elif key == "gpu_device":
                run.gpu_device = value
            elif key == "powersave":
                run.powersave = value
            elif key == "loop_count":
                run.loop_count = value
            continue
        if m := _ROW.match(line):
            if run is None:
                run = start(no)
            network, precision = split_name(m.group("name"))
            run.rows.append(BenchRow(network=network, precision=precision, min_ms=float(m.group("min")),
                                     max_ms=float(m.group("max")), avg_ms=float(m.group("avg")), line=no,
                                     published_name=m.group("name")))
            continue
        if line.startswith("```") and run is not None and run.rows:
            run, pending_cmd, pending_gpu_info = None, "", False
    runs = [r for r in runs if r.rows]
    return [r for r in runs if r.cpu] if cpu_only else runs
