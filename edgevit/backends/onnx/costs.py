"""What each quantizable node costs in ONNX Runtime, int8 vs float: per-node profiling, attributed.

Both models run in one process, interleaved, with ORT's profiler on (`SessionOptions.enable_profiling`
gives every kernel's time per run) and idle spinning off; a node's cost is its median over the runs.
ORT rewrites the graph at load (QDQ fusion into QLinearConv/QGemm, NCHWc convs, layout transposes), so
the optimized graphs are saved too and each optimized node is traced back to the quantizable node it
computes (the *anchor*): by the weights and biases it reads (`W_quantized`, `W_scale` and NCHWc's
renamed weights keep the bias name), else by name (`conv2d_1_nchwc`, `node_conv2d_token_95`).
Q/DQ, layout and reshape nodes (*glue*) are charged to the anchors they connect to through glue only,
split evenly; everything else (LayerNorm, GELU, Softmax, residual Adds) is the unattributed rest.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.quantize.costs import MEASURED, CostTable, NodeCost
from edgevit.quantize.select import Candidate
from edgevit.quantize.verdict import SpeedVerdict, paired_compare

GLUE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Transpose", "ReorderInput",
                      "ReorderOutput", "Reshape", "Squeeze", "Unsqueeze", "Flatten"})
_INIT_SUFFIXES = ("_quantized", "_scale", "_zero_point")
_NAME_SUFFIX = re.compile(r"(_token_\d+|_nchwc)+$")
PROFILE_RUNS = 30
WARMUP = 5


@dataclass
class OptNode:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    initializers: list[str]  # inputs that are initializers of the optimized graph


@dataclass
class Profile:
    """One model as ORT ran it: its optimized graph and each node's median ms per run."""

    nodes: list[OptNode]
    ms: dict[str, float]
    runs: int


@dataclass
class AnchorKeys:
    """How optimized nodes are traced back to the quantizable nodes of the pre-processed graph."""

    by_initializer: dict[str, str] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)


def anchor_keys(model: Any, names: Sequence[str]) -> AnchorKeys:
    """Keys of the candidate nodes `names` in the (pre-processed) ONNX `model`."""
    inits = {t.name for t in model.graph.initializer}
    wanted = set(names)
    keys = AnchorKeys()
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        keys.by_name[node.name] = node.name
        for out in node.output:
            keys.by_name.setdefault(out, node.name)
        for i in node.input[1:]:
            if i in inits:
                keys.by_initializer.setdefault(i, node.name)
    return keys


def _base(init: str) -> str:
    for suffix in _INIT_SUFFIXES:
        if init.endswith(suffix):
            return init[: -len(suffix)]
    return init


def anchor_of(node: OptNode, keys: AnchorKeys) -> str | None:
    """The candidate an optimized node computes, or None (glue or an unquantizable op)."""
    if node.op_type in ("QuantizeLinear", "DynamicQuantizeLinear"):
        return None  # activation quantizers are glue even when their scale is named after a weight
    for init in node.initializers:
        cand = keys.by_initializer.get(_base(init))
        if cand is not None:
            return cand
    if node.op_type in GLUE_OPS:
        return None
    stripped = _NAME_SUFFIX.sub("", node.name)
    return keys.by_name.get(node.name) or keys.by_name.get(stripped)


def attribute(profile: Profile, keys: AnchorKeys) -> tuple[dict[str, float], float]:
    """(ms per candidate, unattributed ms): anchors' own time plus the glue reaching them through glue."""
    anchors = {n.name: a for n in profile.nodes if (a := anchor_of(n, keys)) is not None}
    producer = {o: n for n in profile.nodes for o in n.outputs}
    consumers: dict[str, list[OptNode]] = defaultdict(list)
    for n in profile.nodes:
        for i in n.inputs:
            consumers[i].append(n)
    cost: dict[str, float] = defaultdict(float)
    rest = 0.0
    for n in profile.nodes:
        t = profile.ms.get(n.name, 0.0)
        if n.name in anchors:
            cost[anchors[n.name]] += t
        elif n.op_type in GLUE_OPS and (reached := _reached(n, anchors, producer, consumers)):
            for a in reached:
                cost[a] += t / len(reached)
        else:
            rest += t
    return dict(cost), rest


def _reached(start: OptNode, anchors: dict[str, str], producer: dict[str, OptNode],
             consumers: dict[str, list[OptNode]]) -> set[str]:
    """Candidates adjacent to the glue region around `start` (walking through glue nodes only)."""
    seen, stack, found = {start.name}, [start], set()
    while stack:
        n = stack.pop()
        nbrs = [producer[i] for i in n.inputs if i in producer] + [c for o in n.outputs for c in consumers.get(o, [])]
        for m in nbrs:
            if m.name in seen:
                continue
            seen.add(m.name)
            if m.name in anchors:
                found.add(anchors[m.name])
            elif m.op_type in GLUE_OPS:
                stack.append(m)
    return found


# ------------------------------------------------------------------------------------------ profiling


def _session(path: Path, threads: int | None, *, profile_prefix: str | None = None, save_to: Path | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _graph(path: Path) -> list[OptNode]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    return [OptNode(n.name, n.op_type, list(n.input), list(n.output), [i for i in n.input if i in inits])
            for n in model.graph.node]


def _node_times(trace: Path, skip: int) -> dict[str, float]:
    """Median ms per node over the runs after the first `skip` (the warm-up)."""
    events = json.loads(trace.read_text())
    per: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per[e["name"][: -len("_kernel_time")]].append(float(e["dur"]) / 1000.0)
    return {n: statistics.median(v[skip:] or v) for n, v in per.items()}


def profile_models(paths: Sequence[Path], x: np.ndarray, threads: int | None, runs: int = PROFILE_RUNS,
                   warmup: int = WARMUP) -> list[Profile]:
    """Profile the models interleaved (one run of each per round) and return each one's Profile."""
    with tempfile.TemporaryDirectory(prefix="edgevit-prof-") as tmp:
        sessions = [_session(p, threads, profile_prefix=os.path.join(tmp, f"m{i}"), save_to=Path(tmp) / f"opt{i}.onnx")
                    for i, p in enumerate(paths)]
        feeds = [{s.get_inputs()[0].name: x} for s in sessions]
        for r in range(warmup + runs):
            order = range(len(sessions)) if r % 2 == 0 else reversed(range(len(sessions)))
            for i in order:
                sessions[i].run(None, feeds[i])
        traces = [Path(s.end_profiling()) for s in sessions]
        return [Profile(_graph(Path(tmp) / f"opt{i}.onnx"), _node_times(t, warmup), runs)
                for i, t in enumerate(traces)]


class OrtMeasuredCosts:
    """CostSource: ONNX Runtime on this host, per-node profiling and paired whole-model timing."""

    kind = MEASURED

    def __init__(self, x: np.ndarray, threads: int | None, keys_model: Path, runs: int = PROFILE_RUNS) -> None:
        import onnx
        import onnxruntime

        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.threads = threads
        self.runs = runs
        self._model = onnx.load(str(keys_model), load_external_data=False)
        self.description = (f"measured: onnxruntime {onnxruntime.__version__} CPU on this host, "
                            f"{threads or 'default'} threads, per-node profiling")

    def node_costs(self, float_artifact: Path, int8_artifact: Path, candidates: Sequence[Candidate]) -> CostTable:
        names = [c.name for c in candidates]
        keys = anchor_keys(self._model, names)
        fp, q = profile_models([float_artifact, int8_artifact], self.x, self.threads, self.runs)
        f_cost, f_rest = attribute(fp, keys)
        q_cost, q_rest = attribute(q, keys)
        costs = {n: NodeCost(q_cost[n], f_cost[n]) for n in names if n in q_cost and n in f_cost}
        unmeasured = [n for n in names if n not in costs]
        # the rest also holds the costs of candidates already kept float (identical in both models)
        return CostTable(costs=costs, source=self.description, kind=MEASURED, runs=self.runs,
                         rest_int8_ms=q_rest + sum(v for n, v in q_cost.items() if n not in costs),
                         rest_float_ms=f_rest + sum(v for n, v in f_cost.items() if n not in costs),
                         unmeasured=unmeasured)

    def speed(self, float_artifact: Path, int8_artifact: Path) -> SpeedVerdict:
        return self.compare(float_artifact, {"int8": int8_artifact})["int8"]

    def compare(self, base: Path, variants: dict[str, Path]) -> dict[str, SpeedVerdict]:
        sessions = {k: _session(p, self.threads) for k, p in {"": base, **variants}.items()}
        feeds = {k: {s.get_inputs()[0].name: self.x} for k, s in sessions.items()}

        def runner(k: str) -> Any:
            return lambda: sessions[k].run(None, feeds[k])

        return paired_compare(runner(""), {k: runner(k) for k in variants},
                              source=self.description.replace("per-node profiling", "paired whole-model timing"))
