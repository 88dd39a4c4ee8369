"""What each quantized op costs in int8 and in float, from OpenVINO's per-node performance counters.

The CPU plugin fuses ops: one runtime node runs a Convolution with its bias, GELU and the FakeQuantize
of its output; it inserts Reorder nodes for layout changes; an unfused FakeQuantize runs as its own
node. The runtime model names, for every node, the original ops fused into it (`originalLayersNames`),
which is what lets a node's time be charged to the quantized op it serves:

- a node holding a quantized op is charged to it (fused activations and requantization included);
- a node holding only FakeQuantize ops is charged to the ops those quantizers feed (split evenly);
  a float node with a FakeQuantize fused in is charged only its extra time over the same float node in
  the fp32 model;
- an inserted node (Reorder, Convert: no original op) is charged like the node it feeds.

The fp32 model is charged the same way, so `int8_us - float_us` is what quantizing one op costs.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FOLLOW_DEPTH = 4  # inserted nodes (reorders) are followed this many hops to the node they feed


@dataclass(frozen=True)
class RuntimeNode:
    """One node of a compiled model's runtime graph."""

    name: str
    layer_type: str
    exec_type: str
    originals: tuple[str, ...]
    consumers: tuple[str, ...]


@dataclass
class OpCost:
    """One quantized op: its measured time in the int8 model (quantizers and reorders included) and in fp32."""

    name: str
    op_type: str
    int8_us: float
    float_us: float
    int8_nodes: list[str] = field(default_factory=list)

    @property
    def delta_us(self) -> float:
        return self.int8_us - self.float_us

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta_us": round(self.delta_us, 2), "int8_us": round(self.int8_us, 2),
                "float_us": round(self.float_us, 2)}


def runtime_graph(compiled: Any) -> list[RuntimeNode]:
    """The runtime graph of a compiled model, in execution order."""
    nodes = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        originals = tuple(n for n in _rt_str(rt, "originalLayersNames").split(",") if n)
        consumers = tuple(t.get_node().get_friendly_name() for out in op.outputs() for t in out.get_target_inputs())
        nodes.append(RuntimeNode(op.get_friendly_name(), _rt_str(rt, "layerType"), _rt_str(rt, "primitiveType"),
                                 originals, consumers))
    return nodes


def _rt_str(rt: Any, key: str) -> str:
    return str(rt[key].astype(str)) if key in rt else ""


def profile(runners: Sequence[Any], x: np.ndarray, rounds: int, warmup: int = 5) -> list[dict[str, float]]:
    """Median time (µs) of every executed node, per runner; runners run interleaved (rotating order),
    so load from other processes hits each alike. Runners need `perf_count=True`."""
    for r in runners:
        for _ in range(warmup):
            r.infer(x)
    samples: list[dict[str, list[float]]] = [defaultdict(list) for _ in runners]
    n = len(runners)
    for i in range(rounds):
        for j in [*range(i % n, n), *range(i % n)]:
            runners[j].infer(x)
            for p in runners[j].profiling_info():
                if str(p.status).endswith("EXECUTED") and "NOT_RUN" not in str(p.status):
                    samples[j][p.node_name].append(p.real_time.total_seconds() * 1e6)
    return [{k: statistics.median(v) for k, v in s.items()} for s in samples]


def aliases(model: Any, ops: Sequence[str]) -> dict[str, str]:
    """Original op name -> the quantized op it stands for: the op itself, and the bias Add (or scale
    Multiply) right after it. The CPU plugin names a fused fp32 MatMul + bias node after the Add alone
    (`val_8` for `val_8/WithoutBiases`), so the op's own name is not always in `originalLayersNames`."""
    wanted = set(ops)
    out = {q: q for q in ops}
    for op in model.get_ordered_ops():
        if op.get_friendly_name() not in wanted:
            continue
        for out_port in op.outputs():
            for t in out_port.get_target_inputs():
                node = t.get_node()
                if node.get_type_name() in ("Add", "Multiply") and any(
                    _is_constant(node.input_value(i).get_node()) for i in range(node.get_input_size())
                ):
                    out.setdefault(node.get_friendly_name(), op.get_friendly_name())
    return out


def _is_constant(node: Any) -> bool:
    while node.get_type_name() == "Convert" and node.get_input_size():
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


def _owners(nodes: Mapping[str, RuntimeNode], name: str, alias: Mapping[str, str], depth: int = 0) -> list[str]:
    """The quantized ops a runtime node serves directly (rules 1 and 3 of the module docstring)."""
    node = nodes[name]
    held = [alias[o] for o in node.originals if o in alias]
    if held:
        return held[:1]
    if not node.originals and depth < FOLLOW_DEPTH:
        for c in node.consumers:
            if c in nodes:
                got = _owners(nodes, c, alias, depth + 1)
                if got:
                    return got
    return []


def charge(
    graph: Sequence[RuntimeNode], times: Mapping[str, float], alias: Mapping[str, str],
    fq_targets: Mapping[str, Sequence[str]] | None = None, float_times: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], dict[str, list[str]], float]:
    """µs charged to each quantized op, the runtime nodes charged to it, and the µs charged to none.

    `alias` maps original op names to the quantized op they stand for (`aliases`); `fq_targets`
    (FakeQuantize name -> the ops it feeds) and `float_times` (original op name -> µs of the fp32
    runtime node that holds it) are given for the int8 model only."""
    nodes = {n.name: n for n in graph}
    cost: dict[str, float] = defaultdict(float)
    held_by: dict[str, list[str]] = defaultdict(list)
    free = 0.0
    for n in graph:
        t = float(times.get(n.name, 0.0))
        if t <= 0:
            continue
        owners = _owners(nodes, n.name, alias)
        if not owners and fq_targets:
            fqs = [o for o in n.originals if o in fq_targets]
            if fqs:
                targets = sorted({alias[q] for o in fqs for q in fq_targets[o] if q in alias})
                rest = [o for o in n.originals if o not in fq_targets]
                base = max((float_times or {}).get(o, 0.0) for o in rest) if rest else 0.0
                extra = max(0.0, t - base) if rest else t
                if targets:
                    for q in targets:
                        cost[q] += extra / len(targets)
                        held_by[q].append(n.name)
                    free += t - extra
                    continue
        if owners:
            cost[owners[0]] += t
            held_by[owners[0]].append(n.name)
        else:
            free += t
    return dict(cost), dict(held_by), free


def times_by_original(graph: Sequence[RuntimeNode], times: Mapping[str, float]) -> dict[str, float]:
    """Original op name -> µs of the runtime node that holds it."""
    return {o: float(times.get(n.name, 0.0)) for n in graph for o in n.originals}


def op_costs(
    fp32_graph: Sequence[RuntimeNode], fp32_times: Mapping[str, float],
    int8_graph: Sequence[RuntimeNode], int8_times: Mapping[str, float],
    quantized: Mapping[str, str], fq_targets: Mapping[str, Sequence[str]], alias: Mapping[str, str],
) -> tuple[list[OpCost], dict[str, float]]:
    """Per quantized op: int8 vs float cost; plus the totals (ms) and what no op could be charged with."""
    alias = {k: v for k, v in alias.items() if v in quantized}
    f_cost, _, f_free = charge(fp32_graph, fp32_times, alias)
    i_cost, i_nodes, i_free = charge(int8_graph, int8_times, alias, fq_targets, times_by_original(fp32_graph, fp32_times))
    costs = [OpCost(q, t, i_cost.get(q, 0.0), f_cost.get(q, 0.0), i_nodes.get(q, [])) for q, t in quantized.items()]
    totals = {"fp32_nodes_ms": sum(fp32_times.values()) / 1e3, "int8_nodes_ms": sum(int8_times.values()) / 1e3,
              "fp32_uncharged_ms": f_free / 1e3, "int8_uncharged_ms": i_free / 1e3}
    return costs, totals
