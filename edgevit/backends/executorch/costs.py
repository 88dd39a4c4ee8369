"""What each quantizable node costs in ExecuTorch (XNNPACK), int8 vs float: ETDump per-op profiles.

Programs load with `enable_etdump=True`; XNNPACK's delegate then reports every operator it runs
("Fully Connected (NC, QS8, QC8W) GEMM #3", "Convert (NC) #7") and the runtime every portable kernel
("native_call_native_layer_norm.out"), each with one duration per run; a node's cost is its median.
XNNPACK names operators by kind, not by graph node, so anchors are matched by order: the k-th
convolution operator of a run is the k-th conv2d node of the graph (likewise linear, add, mul, cat),
which holds because delegates run in graph order and each such node lowers to one operator; a kind
whose operator count differs from its node count is left unmeasured. Convert (Q/DQ) and Transpose
operators (*glue*) are charged half to the anchor before and half to the anchor after them in the
same delegate call; portable quantize/dequantize kernels to their neighbours in the run.
"""
from __future__ import annotations

import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.quantize.costs import MEASURED, CostTable, NodeCost
from edgevit.quantize.select import Candidate
from edgevit.quantize.verdict import SpeedVerdict, paired_compare

# XNNPACK operator name -> the node kind it computes (the aten ops XNNPACKQuantizer annotates)
ANCHOR_OPS = (("conv", re.compile(r"^Convolution \(")), ("linear", re.compile(r"^Fully Connected \(")),
              ("add", re.compile(r"^Add \(")), ("mul", re.compile(r"^Multiply \(")),
              ("cat", re.compile(r"^Concatenate")), ("pool", re.compile(r"Average Pooling")))
GLUE = re.compile(r"^(Convert \(|Transpose \(|native_call_(quantize|dequantize)_per_)")
CONTAINERS = ("DELEGATE_CALL", "OPERATOR_CALL", "Method::execute", "Method::init", "Program::load_method")
PROFILE_RUNS = 20
WARMUP = 3


@dataclass
class Event:
    name: str
    ms: float  # median over the timed runs
    delegate: int  # which delegate call of the run it belongs to (-1: a portable kernel)


def op_class(name: str) -> str | None:
    for cls, pattern in ANCHOR_OPS:
        if pattern.search(name):
            return cls
    return None


def _events(etdump: Path, skip: int) -> list[Event]:
    """The events of one run, in order, each with its median over the runs after `skip`."""
    from executorch.devtools import Inspector

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        insp = Inspector(etdump_path=str(etdump))
    out: list[Event] = []
    delegate = 0
    for block in insp.event_blocks:
        if block.name != "Execute":
            continue
        for e in block.events:
            if e.perf_data is None:
                continue
            if e.name == "DELEGATE_CALL":
                delegate += 1
                continue
            if e.name in CONTAINERS:
                continue
            raw = list(e.perf_data.raw)
            out.append(Event(e.name, statistics.median(raw[skip:] or raw), delegate if e.is_delegated_op else -1))
    return out


def profile_programs(paths: Sequence[Path], x: np.ndarray, threads: int | None, runs: int = PROFILE_RUNS,
                     warmup: int = WARMUP) -> list[list[Event]]:
    """ETDump of each program over `runs` interleaved runs (after `warmup`), as ordered events."""
    import torch
    from executorch.extension.pybindings import portable_lib

    if threads:
        portable_lib._unsafe_reset_threadpool(int(threads))
    mods = [portable_lib._load_for_executorch(str(p), enable_etdump=True, debug_buffer_size=0) for p in paths]
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    for r in range(warmup + runs):
        for m in (mods if r % 2 == 0 else mods[::-1]):
            m.forward([t])
    with tempfile.TemporaryDirectory(prefix="edgevit-etdump-") as tmp:
        out = []
        for i, m in enumerate(mods):
            f = Path(tmp) / f"p{i}.etdp"
            m.write_etdump_result_to_file(str(f))
            out.append(_events(f, warmup))
    return out


def attribute(events: list[Event], order: dict[str, list[str]]) -> tuple[dict[str, float], float, set[str]]:
    """(ms per node, unattributed ms, kinds left unmeasured). `order`: kind -> node names in graph order."""
    anchors: dict[int, str] = {}
    seen: dict[str, int] = defaultdict(int)
    for i, e in enumerate(events):
        cls = op_class(e.name)
        if cls in order:
            k = seen[cls]
            seen[cls] += 1
            if k < len(order[cls]):
                anchors[i] = order[cls][k]
    bad = {cls for cls, names in order.items() if seen.get(cls, 0) != len(names)}
    anchors = {i: n for i, n in anchors.items() if not any(n in order[c] for c in bad)}
    cost: dict[str, float] = defaultdict(float)
    rest = 0.0
    for i, e in enumerate(events):
        if i in anchors:
            cost[anchors[i]] += e.ms
        elif GLUE.search(e.name) and (near := _neighbours(events, anchors, i)):
            for n in near:
                cost[n] += e.ms / len(near)
        else:
            rest += e.ms
    return dict(cost), rest, bad


def _neighbours(events: list[Event], anchors: dict[int, str], i: int) -> list[str]:
    """The anchors just before and just after event i (within its delegate call when it has one)."""
    same = (lambda j: events[j].delegate == events[i].delegate) if events[i].delegate >= 0 else (lambda j: True)
    before = next((anchors[j] for j in range(i - 1, -1, -1) if j in anchors and same(j)), None)
    after = next((anchors[j] for j in range(i + 1, len(events)) if j in anchors and same(j)), None)
    return [n for n in (before, after) if n is not None]


class ExecuTorchMeasuredCosts:
    """CostSource: ExecuTorch (XNNPACK) on this host, ETDump per-op profiles and paired timing."""

    kind = MEASURED

    def __init__(self, x: np.ndarray, threads: int | None, order: dict[str, list[str]], runs: int = PROFILE_RUNS) -> None:
        from edgevit.versions import package_version

        self.x, self.threads, self.order, self.runs = x, threads, order, runs
        self.description = (f"measured: executorch {package_version('executorch')} XNNPACK on this host, "
                            f"{threads or 'default'} threads, ETDump per-op profiling")

    def node_costs(self, float_artifact: Path, int8_artifact: Path, candidates: Sequence[Candidate]) -> CostTable:
        fp, q = profile_programs([float_artifact, int8_artifact], self.x, self.threads, self.runs)
        f_cost, f_rest, f_bad = attribute(fp, self.order)
        q_cost, q_rest, q_bad = attribute(q, self.order)
        names = [c.name for c in candidates]
        costs = {n: NodeCost(q_cost[n], f_cost[n]) for n in names if n in q_cost and n in f_cost}
        bad = sorted(f_bad | q_bad)
        return CostTable(costs=costs, source=self.description, kind=MEASURED, runs=self.runs,
                         rest_int8_ms=q_rest + sum(v for n, v in q_cost.items() if n not in costs),
                         rest_float_ms=f_rest + sum(v for n, v in f_cost.items() if n not in costs),
                         unmeasured=[n for n in names if n not in costs],
                         notes=[f"XNNPACK operator count differs from the graph's {k} nodes: {k} unmeasured" for k in bad])

    def speed(self, float_artifact: Path, int8_artifact: Path) -> SpeedVerdict:
        return self.compare(float_artifact, {"int8": int8_artifact})["int8"]

    def compare(self, base: Path, variants: dict[str, Path]) -> dict[str, SpeedVerdict]:
        import torch
        from executorch.extension.pybindings import portable_lib

        if self.threads:
            portable_lib._unsafe_reset_threadpool(int(self.threads))
        mods = {k: portable_lib._load_for_executorch(str(p)) for k, p in {"": base, **variants}.items()}
        t = torch.from_numpy(np.ascontiguousarray(self.x, dtype=np.float32))

        def runner(k: str) -> Any:
            return lambda: mods[k].forward([t])

        return paired_compare(runner(""), {k: runner(k) for k in variants},
                              source=self.description.replace("ETDump per-op profiling", "paired whole-model timing"))
