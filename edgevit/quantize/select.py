"""Latency-aware mixed precision: which quantizable nodes run int8, chosen by measured cost within an
accuracy budget. What every target with int8 shares; the target supplies candidates, builds variants
and runs them (`Int8Target`), a cost source supplies the latency figures (`edgevit.quantize.costs`).

The loop (anchored on Intel Neural Compressor's tuning loop, which stops at the first configuration
that meets the accuracy criterion with measured latency as its objective, and on NNCF's
accuracy-aware quantization, which ranks layers and returns the worst to float; neither measures
per node on the target runtime, which is what this loop decides by):

1. every candidate int8, except those the user keeps float;
2. latency passes: the cost source measures each int8 node (its kernel plus its Q/DQ and layout nodes)
   against the same node in float; the nodes where int8 does not pay by `margin` are *proposed* back
   to float (all of them, and those of each kind on their own), and whole-model paired timing against
   the current configuration decides which proposal is taken, if any: a node kept float can cost its
   neighbours layout changes no per-node figure shows (CAS-ViT's depthwise convs back in float made
   the whole model slower through NHWC/NCHWc transposes). Repeated up to `max_passes`;
3. accuracy: while the hold-out misses the budget, the int8 nodes that lose most accuracy themselves
   (their drift) are tried back in float one by one and the one that helps the hold-out most goes
   back; the first configuration that meets the budget is kept;
4. the speed verdict: the chosen variant against the fp32 artifact, paired (`edgevit.quantize.verdict`).
   When no node pays on its own, the whole model in int8 is judged. Conclusively slower by more than
   PARITY (5 %) refuses the export (`Int8NotFasterError`) unless forced; slower by less is *parity*
   and an inconclusive verdict (noise larger than the effect) ships; both say so.

Every decision is recorded with the figures behind it (`Selection`, the sidecar's `int8_selection`).
"""
from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgevit import progress
from edgevit.errors import ConfigError, Int8NotFasterError
from edgevit.quantize.budget import DEFAULT_TOP1_AGREEMENT, Accuracy, AccuracyBudget, measure
from edgevit.quantize.costs import CostSource, NodeCost
from edgevit.quantize.verdict import FASTER, INCONCLUSIVE, NOT_MEASURED, SLOWER, SpeedVerdict

FORCE_FLAG = "--int8-force"  # the CLI flag (Python: export(..., int8_force=True))
MODES = ("measured", "static")  # static: every candidate int8 (the preset's rules), speed still checked
DEFAULT_MARGIN = 0.03  # int8 must beat float by 3 % of the node's float cost to stay int8
MAX_PASSES = 4
MAX_ACCURACY_REVERTS = 12
PROBES = 4  # nodes tried back in float per accuracy step (the worst by their own drift)
PROBE_ROUNDS = 2  # the next PROBES when none of the first helped
NO_NODE_PAYS = "no node pays"
# int8 conclusively slower, but by less than this fraction of fp32's speed, is parity: it ships (4x smaller
# weights, the same speed) and says so; two sessions of one model differ by a few % on a shared machine
PARITY = 0.05


@dataclass(frozen=True)
class Candidate:
    """A node the target can run in int8."""

    name: str  # the target's own node name (ONNX node name, fx node name)
    kind: str  # "Conv", "Conv depthwise", "Gemm", "MatMul", "linear", "add", ...
    where: str = ""  # a readable location (weight or module name)


class Int8Target(Protocol):
    """What one target gives the selection loop."""

    runtime: str  # runtime key (onnxruntime, executorch)
    label: str  # the model, for messages
    float_artifact: Path  # the fp32 artifact of the same model (the speed base)

    def candidates(self) -> list[Candidate]: ...

    # optional: `proposals_per_kind` (bool, default True) and `max_passes` (int) for targets whose
    # variants take long to build

    def build(self, float_nodes: frozenset[str]) -> Path:
        """The int8 artifact with `float_nodes` kept float (cached per set)."""
        ...

    def reference(self) -> np.ndarray:
        """fp32 logits on the hold-out images."""
        ...

    def outputs(self, float_nodes: frozenset[str]) -> np.ndarray:
        """The configuration's logits on the hold-out images."""
        ...

    def drift(self, float_nodes: frozenset[str]) -> dict[str, float]:
        """Per int8 node of the configuration: the accuracy it loses itself (higher is worse)."""
        ...


@dataclass(frozen=True)
class SelectSettings:
    """How the loop runs; `keep_float` names nodes or kinds to keep float."""

    mode: str = "measured"
    force: bool = False
    keep_float: tuple[str, ...] = ()
    static_float: tuple[str, ...] = ()  # what the target's static rules keep float (static mode only)
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    margin: float = DEFAULT_MARGIN
    max_passes: int = MAX_PASSES
    max_accuracy_reverts: int = MAX_ACCURACY_REVERTS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"int8 selection mode {self.mode!r} is not one of {', '.join(MODES)}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"int8 margin must be in [0, 1), got {self.margin}")


@dataclass
class NodeDecision:
    """One candidate's precision and why."""

    name: str
    kind: str
    where: str
    int8: bool
    reason: str
    int8_ms: float | None = None  # the last measured costs (None: not measured)
    float_ms: float | None = None


@dataclass
class Selection:
    """The record of one selection (the sidecar's `export.int8_selection`)."""

    runtime: str
    mode: str
    cost_source: str
    cost_kind: str
    budget: dict[str, Any]
    margin: float
    outcome: str  # pays | parity | inconclusive | slower | no node pays | not measured
    forced: bool
    nodes: list[NodeDecision] = field(default_factory=list)
    passes: list[dict[str, Any]] = field(default_factory=list)  # each latency pass: costs and reverts
    accuracy: dict[str, Any] = field(default_factory=dict)  # the shipped configuration's
    accuracy_steps: list[dict[str, Any]] = field(default_factory=list)
    speed: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def float_nodes(self) -> list[str]:
        return [d.name for d in self.nodes if not d.int8]

    @property
    def int8_nodes(self) -> list[str]:
        return [d.name for d in self.nodes if d.int8]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["int8_node_count"] = len(self.int8_nodes)
        d["float_node_count"] = len(self.float_nodes)
        d["histogram"] = self.histogram()
        return d

    def histogram(self) -> dict[str, dict[str, int]]:
        """kind -> {"int8": n, "float": m}."""
        out: dict[str, dict[str, int]] = {}
        for n in self.nodes:
            row = out.setdefault(n.kind, {"int8": 0, "float": 0})
            row["int8" if n.int8 else "float"] += 1
        return out


# ------------------------------------------------------------------------------------------ helpers

OPTION_SELECT = "int8_select"  # measured | static
OPTION_KEEP_FLOAT = "int8_keep_float"  # comma-separated node names or kinds (the ncnn target's key too)
OPTION_COSINE = "int8_cosine"  # the budget's mean hold-out cosine (the ncnn target's key too)
OPTION_MARGIN = "int8_margin"  # the fraction of its float cost int8 must save to stay


def settings_from_options(options: dict[str, Any], *, force: bool, static_float: tuple[str, ...] = (),
                          judge_top1: bool = False) -> SelectSettings:
    """SelectSettings from `--option KEY=VALUE` values (strings from the CLI, or Python values)."""
    keep = options.get(OPTION_KEEP_FLOAT) or ()
    if isinstance(keep, str):
        keep = [k.strip() for k in keep.split(",") if k.strip()]

    def number(key: str, default: float) -> float:
        try:
            return float(options.get(key, default))
        except (TypeError, ValueError):
            raise ConfigError(f"option {key} must be a number, got {options.get(key)!r}") from None

    budget = AccuracyBudget(cosine=number(OPTION_COSINE, AccuracyBudget.cosine),
                            top1_agreement=DEFAULT_TOP1_AGREEMENT if judge_top1 else None)
    return SelectSettings(mode=str(options.get(OPTION_SELECT, "measured")), force=force, keep_float=tuple(keep),
                          static_float=tuple(static_float), budget=budget,
                          margin=number(OPTION_MARGIN, DEFAULT_MARGIN))



def resolve_keep_float(cands: dict[str, Candidate], keep: tuple[str, ...]) -> set[str]:
    """Node names for `keep` (node names or kinds); ConfigError naming what matches nothing."""
    kinds = collections.defaultdict(set)
    for c in cands.values():
        kinds[c.kind].add(c.name)
    unknown = [k for k in keep if k not in cands and k not in kinds]
    if unknown:
        raise ConfigError(f"int8_keep_float: no quantizable node or kind named {', '.join(unknown)} "
                          f"(kinds: {', '.join(sorted(kinds))})")
    return {n for k in keep for n in ({k} if k in cands else kinds[k])}


def _proposals(slow: list[str], cands: dict[str, Candidate], per_kind: bool) -> dict[str, list[str]]:
    """The reverts to time: every slow node, and (`per_kind`) the slow nodes of each kind on their own."""
    by_kind: dict[str, list[str]] = collections.defaultdict(list)
    for n in slow:
        by_kind[cands[n].kind].append(n)
    out = {"every node where int8 does not pay": slow}
    if per_kind and len(by_kind) > 1:
        out |= {f"{kind} where int8 does not pay": names for kind, names in sorted(by_kind.items())}
    return out


def _latency_passes(target: Int8Target, cost: CostSource, cands: dict[str, Candidate], float_set: set[str],
                    settings: SelectSettings, reasons: dict[str, str], seen: dict[str, NodeCost],
                    passes: list[dict[str, Any]]) -> None:
    """Step 2: per-node costs propose reverts (all slow nodes, or those of one kind); whole-model paired
    timing against the current configuration decides which proposal, if any, is taken."""
    # a target whose variants are costly to build (ExecuTorch lowers each one) times fewer proposals
    per_kind = bool(getattr(target, "proposals_per_kind", True))
    for k in range(1, min(settings.max_passes, getattr(target, "max_passes", settings.max_passes)) + 1):
        current = target.build(frozenset(float_set))
        live = [cands[n] for n in cands if n not in float_set]
        with progress.step(f"int8: per-node costs int8 vs float, pass {k} ({len(live)} int8 nodes)"):
            table = cost.node_costs(target.float_artifact, current, live)
        seen.update(table.costs)
        for n in table.unmeasured:
            reasons.setdefault(n, "int8: no per-node cost could be attributed (the whole-model timing judged it)")
        slow = [n for n in cands if n in table.costs and n not in float_set and not table.costs[n].pays(settings.margin)]
        record: dict[str, Any] = {"pass": k, "slow": slow, "taken": None, "proposals": {}, **table.as_dict()}
        passes.append(record)
        if not slow:
            return
        props = _proposals(slow, cands, per_kind)
        paths = {name: target.build(frozenset(float_set | set(nodes))) for name, nodes in props.items()}
        with progress.step(f"int8: time {len(paths)} revert proposal(s) against the current configuration"):
            verdicts = cost.compare(current, paths)
        record["proposals"] = {name: {"nodes": props[name], "vs_current": verdicts[name].as_dict()} for name in props}
        better = [n for n in props if verdicts[n].outcome == FASTER]
        if not better:
            for n in slow:
                reasons[n] = (f"int8: kept although its own cost does not pay ({cost.kind} int8 "
                              f"{table.costs[n].int8_ms:.3f} ms vs float {table.costs[n].float_ms:.3f} ms): "
                              f"no revert proposal made the whole model faster (pass {k})")
            return
        top = max(better, key=lambda n: verdicts[n].ratio or 0.0)
        # among the proposals as fast as the best (within its interval), the one returning most nodes to
        # float: no slower, and more accurate
        best = max((n for n in better if (verdicts[n].ratio or 0.0) >= (verdicts[top].ci_low or 0.0)),
                   key=lambda n: (len(props[n]), verdicts[n].ratio or 0.0))
        record["taken"] = best
        for n in props[best]:
            c = table.costs[n]
            reasons[n] = (f"float: int8 does not pay ({cost.kind} int8 {c.int8_ms:.3f} ms vs float {c.float_ms:.3f} ms; "
                          f"reverting '{best}' made the model {verdicts[best].describe('the configuration before')}, "
                          f"pass {k})")
        float_set.update(props[best])
        if len(float_set) == len(cands):
            return


def _accuracy_loop(target: Int8Target, cands: dict[str, Candidate], float_set: set[str], settings: SelectSettings,
                   reasons: dict[str, str], steps: list[dict[str, Any]], ref: np.ndarray) -> Accuracy:
    """Step 3: while the budget is missed, rank the int8 nodes by the accuracy they lose themselves,
    try the worst PROBES back in float one by one (end to end, on the hold-out) and keep the one that
    helps most; the next PROBES in rank order when none of them helps."""
    with progress.step("int8: the configuration's accuracy on the hold-out"):
        acc = measure(ref, target.outputs(frozenset(float_set)))
    while (missed := settings.budget.misses(acc)) and len(steps) < settings.max_accuracy_reverts:
        int8_now = [n for n in cands if n not in float_set]
        if not int8_now:
            break
        with progress.step(f"int8: accuracy {missed[0]}: ranking {len(int8_now)} int8 nodes"):
            drift = target.drift(frozenset(float_set))
        ranked = sorted(int8_now, key=lambda n: -drift.get(n, float("-inf")))
        trials: dict[str, Accuracy] = {}
        for lo in range(0, min(len(ranked), PROBES * PROBE_ROUNDS), PROBES):
            with progress.step(f"int8: accuracy: {min(PROBES, len(ranked) - lo)} nodes back to float, one by one"):
                for n in ranked[lo : lo + PROBES]:
                    trials[n] = measure(ref, target.outputs(frozenset(float_set | {n})))
            if max(t.cosine for t in trials.values()) > acc.cosine:
                break
        best = max(trials, key=lambda n: trials[n].cosine)
        if trials[best].cosine <= acc.cosine:
            steps.append({"reverted": None, "probes": {n: t.cosine for n, t in trials.items()}, "before": acc.as_dict()})
            break
        new = trials[best]
        float_set.add(best)
        reasons[best] = (f"float: accuracy ({missed[0]}; back to float it gave the best hold-out cosine of "
                         f"{len(trials)} tried: {acc.cosine:.5f} -> {new.cosine:.5f})")
        steps.append({"reverted": best, "drift": drift.get(best), "probes": {n: t.cosine for n, t in trials.items()},
                      "before": acc.as_dict(), "after": new.as_dict()})
        acc = new
    return acc


def _static_fallback(target: Int8Target, cands: dict[str, Candidate], static: set[str], float_set: set[str],
                     settings: SelectSettings, reasons: dict[str, str], steps: list[dict[str, Any]], ref: np.ndarray, acc: Accuracy) -> Accuracy:
    """The accuracy loop missed the budget: the target's static rules (the preset's float nodes, e.g.
    attention MatMuls) go back to float as well, then the loop runs again from there."""
    missed = settings.budget.misses(acc)[0]
    with progress.step(f"int8: accuracy {missed}: the preset's {len(static)} float nodes back to float"):
        new = measure(ref, target.outputs(frozenset(float_set | static)))
    steps.append({"reverted": sorted(static), "rule": "the target's static float rules", "before": acc.as_dict(),
                  "after": new.as_dict()})
    if new.cosine <= acc.cosine:
        return acc
    float_set.update(static)
    for n in static:
        reasons[n] = (f"float: accuracy ({missed} after the per-node reverts; the preset's static float rules "
                      f"gave {acc.cosine:.5f} -> {new.cosine:.5f})")
    return _accuracy_loop(target, cands, float_set, settings, reasons, steps, ref)


def _speed_check(target: Int8Target, cost: CostSource | None, artifact: Path, settings: SelectSettings,
                 no_node: str) -> tuple[SpeedVerdict, str]:
    """Step 4: the chosen artifact against fp32, paired; refuses (unless forced) when int8 is
    conclusively slower by more than PARITY. Returns the verdict and the outcome to record."""
    if cost is None:
        return SpeedVerdict(NOT_MEASURED, note="no cost source for this runtime and device"), NOT_MEASURED
    with progress.step("int8: paired speed check against fp32"):
        verdict = cost.speed(target.float_artifact, artifact)
    if verdict.outcome == SLOWER and (verdict.ci_high or 0.0) < 1.0 - PARITY:
        _refuse(target, (f"{no_node}; the whole model in int8 measured " if no_node else "measured ")
                + verdict.describe(), settings.force)
        return verdict, NO_NODE_PAYS if no_node else "slower"
    return verdict, {FASTER: "pays", SLOWER: "parity", INCONCLUSIVE: "inconclusive"}.get(verdict.outcome,
                                                                                          NOT_MEASURED)


def _refuse(target: Int8Target, text: str, forced: bool) -> None:
    if not forced:
        raise Int8NotFasterError(f"int8 does not pay for {target.label} on {target.runtime} here: {text}; "
                                 f"export fp32, or pass {FORCE_FLAG} (Python: int8_force=True) to write it anyway")


# ------------------------------------------------------------------------------------------ the loop


def select(target: Int8Target, cost: CostSource | None, settings: SelectSettings) -> tuple[Path, Selection]:
    """Run the loop; returns the chosen int8 artifact and its record. Raises Int8NotFasterError when
    int8 cannot pay (unless `settings.force`)."""
    cands = {c.name: c for c in target.candidates()}
    if not cands:
        raise ConfigError(f"{target.label}: no node can run int8 on {target.runtime}")
    requested = resolve_keep_float(cands, settings.keep_float)
    reasons = {n: "float: kept float by request (int8_keep_float)" for n in requested}
    if settings.mode == "static":
        static = {n for n in settings.static_float if n in cands} - requested
        reasons |= {n: "float: the target's static rule (int8_select=static)" for n in static}
        requested |= static
    float_set = set(requested)
    seen: dict[str, NodeCost] = {}
    passes: list[dict[str, Any]] = []
    notes: list[str] = []
    measured = settings.mode == "measured" and cost is not None
    if settings.mode == "measured" and cost is None:
        notes.append("no cost source for this runtime and device: every candidate int8 (static)")
    if measured:
        _latency_passes(target, cost, cands, float_set, settings, reasons, seen, passes)
    no_node = ""
    if len(float_set) == len(cands) and len(requested) < len(cands):
        # every node is cheaper in float on its own: all-float would be the fp32 model, so the whole
        # model in int8 is what the speed check below judges (and refuses when it is slower)
        i8, fl = sum(c.int8_ms for c in seen.values()), sum(c.float_ms for c in seen.values())
        no_node = (f"no quantizable node is faster in int8 ({fl / i8 if i8 > 0 else float('nan'):.2f}x fp32 over "
                   f"the {len(seen)} measured nodes, int8 {i8:.3f} ms vs float {fl:.3f} ms)")
        notes.append(f"{no_node}: every candidate int8 (except those kept float by request), judged whole")
        float_set = set(requested)
        for n in cands:
            if n not in requested:
                reasons[n] = "int8: no node pays on its own; the whole-model speed check judges int8 as a whole"

    steps: list[dict[str, Any]] = []
    with progress.step("int8: fp32 on the hold-out"):
        ref = target.reference()
    acc = _accuracy_loop(target, cands, float_set, settings, reasons, steps, ref)
    if settings.budget.misses(acc) and (static := {n for n in settings.static_float if n in cands} - float_set):
        acc = _static_fallback(target, cands, static, float_set, settings, reasons, steps, ref, acc)
    if settings.budget.misses(acc):
        notes.append(f"accuracy budget not met after {len(steps)} reverts: {'; '.join(settings.budget.misses(acc))}")
    artifact = target.build(frozenset(float_set))
    with progress.step("int8: the chosen configuration on the hold-out"):
        acc = measure(ref, target.outputs(frozenset(float_set)))  # the shipped artifact itself, on its runtime
    verdict, outcome = _speed_check(target, cost, artifact, settings, no_node)
    if outcome in ("slower", NO_NODE_PAYS):
        notes.append(f"shipped although int8 does not pay here ({FORCE_FLAG})")

    decisions = [NodeDecision(c.name, c.kind, c.where, c.name not in float_set,
                              reasons.get(c.name, _default_reason(seen.get(c.name), settings.margin)),
                              round(seen[c.name].int8_ms, 4) if c.name in seen else None,
                              round(seen[c.name].float_ms, 4) if c.name in seen else None)
                 for c in cands.values()]
    record = Selection(
        runtime=target.runtime, mode=settings.mode if measured or settings.mode == "static" else "static",
        cost_source=cost.description if cost is not None else "none", cost_kind=cost.kind if cost else "none",
        budget=settings.budget.as_dict(), margin=settings.margin, outcome=outcome, forced=settings.force,
        nodes=decisions, passes=passes, accuracy=acc.as_dict(), accuracy_steps=steps, speed=verdict.as_dict(),
        notes=notes,
    )
    return artifact, record


def _default_reason(cost: NodeCost | None, margin: float) -> str:
    if cost is None:
        return "int8"
    return "int8: pays" if cost.pays(margin) else "int8: kept although its own cost does not pay (passes ended)"


def int8_warning(sel: Selection) -> str | None:
    """The honest note of an artifact that misses its accuracy budget on the hold-out, or that was
    shipped with --int8-force where int8 does not pay (else None)."""
    notes = []
    if _budget_missed(sel):
        missed = AccuracyBudget(**sel.budget).misses(Accuracy(**sel.accuracy))
        notes.append(f"int8 misses its accuracy budget on the calibration hold-out ({'; '.join(missed)})")
    if _forced_slower(sel):
        why = SpeedVerdict(**sel.speed).describe() if sel.speed else sel.outcome
        notes.append(f"int8 shipped with {FORCE_FLAG} although it does not pay on {sel.runtime} here: measured "
                     f"{why}; the fp32 artifact is faster on this machine")
    return "; ".join(notes) or None


def int8_summary(sel: Selection) -> str:
    """One line for the export output: what runs int8, what stayed float and why, the measured speed.
    Every target with latency-aware int8 prints this line (its exporter stores it as `int8_summary`)."""
    hist = sel.histogram()
    parts = ", ".join(f"{k} {v['int8']}/{v['int8'] + v['float']}" for k, v in sorted(hist.items()))
    slow = collections.Counter(d.kind for d in sel.nodes if not d.int8 and "does not pay" in d.reason)
    acc_kinds = collections.Counter(d.kind for d in sel.nodes if not d.int8 and d.reason.startswith("float: accuracy"))
    acc = [f"{k} {n}" for k, n in sorted(acc_kinds.items())]  # counts by kind: the names are in the record
    kept = []
    if slow:
        kept.append("float where int8 does not pay: " + ", ".join(f"{k} {n}" for k, n in sorted(slow.items())))
    if acc:
        kept.append("float for accuracy: " + ", ".join(acc) + " (names in the record)")
    speed = SpeedVerdict(**sel.speed).describe() if sel.speed else "speed not measured"
    return (f"{sel.runtime} int8 ({sel.mode}): {len(sel.int8_nodes)}/{len(sel.nodes)} nodes int8 ({parts})"
            + (f"; {'; '.join(kept)}" if kept else "")
            + f"; {speed}; hold-out cosine to fp32 {sel.accuracy.get('cosine', float('nan')):.5f}"
            + ("; misses its accuracy budget" if _budget_missed(sel) else "")
            + (f"; shipped with {FORCE_FLAG} although int8 does not pay" if _forced_slower(sel) else ""))


def _budget_missed(sel: Selection) -> bool:
    return bool(sel.budget and sel.accuracy and AccuracyBudget(**sel.budget).misses(Accuracy(**sel.accuracy)))


def _forced_slower(sel: Selection) -> bool:
    return sel.forced and sel.outcome in ("slower", NO_NODE_PAYS)
