"""The executorch target's side of latency-aware mixed precision (`edgevit.quantize.select`): its
candidates are the nodes XNNPACKQuantizer annotates (conv, linear, add, mul, cat, pooling) in the
captured graph, a variant is PT2E with a filter keeping some of them float, lowered to XNNPACK, and
costs come from ETDump profiles of the programs (`costs.py`).

Lowering a large model to XNNPACK takes tens of seconds, so the accuracy loop's trials run the
converted Q/DQ graph in PyTorch (the reference numerics XNNPACK's kernels implement); every
configuration that is timed, and the one shipped, is a lowered program run by ExecuTorch.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgevit import progress
from edgevit.quantize.budget import DriftMeter
from edgevit.quantize.select import OPTION_SELECT, Candidate, int8_summary, int8_warning, select, settings_from_options

if TYPE_CHECKING:
    from edgevit.backends.base import ExportRequest

DRIFT_IMAGES = 4
MAX_ACCURACY_REVERTS = 6  # each step probes 4 variants in PyTorch (~4 s each on fcaformer_l1): bound the loop


class _Taps:
    """Runs an fx graph module and keeps the named nodes' outputs."""

    def __init__(self, gm: Any, names: set[str]) -> None:
        import torch.fx

        taps = self

        class _I(torch.fx.Interpreter):
            def run_node(self, n: Any) -> Any:
                r = super().run_node(n)
                if n.name in taps.names and hasattr(r, "detach"):
                    taps.got[n.name] = r.detach().float().numpy()
                return r

        self.names, self.got, self._interp = names, {}, _I(gm)

    def __call__(self, x: Any) -> dict[str, np.ndarray]:
        self.got = {}
        self._interp.run(x)
        return self.got


class ExecuTorchInt8Target:
    """Int8Target for ExecuTorch/XNNPACK."""

    runtime = "executorch"
    proposals_per_kind = False  # every variant is a full XNNPACK lowering: time only "every slow node"
    max_passes = 2

    def __init__(self, model: Any, example: Any, calib: Any, holdout: np.ndarray, *, threads: int | None,
                 label: str, workdir: Path) -> None:
        from edgevit.backends.executorch.export import lower
        from edgevit.backends.executorch.quantize import candidates, capture, graph_order

        self.example, self.calib, self.holdout = example, calib, holdout
        self.threads, self.label, self.workdir = threads, label, workdir
        with progress.step("int8: capture the graph and list its quantizable nodes"):
            self.captured = capture(model, example)
            self._cands = [Candidate(n, k, w) for n, k, w in candidates(self.captured)]
            self.order = graph_order(self.captured)
        with progress.step("int8: lower the fp32 program (the speed base)"):
            buffer, self.float_summary = lower(model, example)
        self.float_artifact = workdir / "fp32.pte"
        self.float_artifact.write_bytes(buffer)
        self._converted: dict[frozenset[str], Any] = {}
        self._built: dict[frozenset[str], tuple[Path, dict[str, Any]]] = {}
        self._calibration: Any = None

    @property
    def calibration(self) -> Any:
        """The one calibration every variant's observers reuse (made on first use)."""
        from edgevit.backends.executorch.quantize import Calibration

        if self._calibration is None:
            self._calibration = Calibration(self.captured, self.example, self.calib)
        return self._calibration

    @property
    def calibration_images(self) -> int:
        return self._calibration.images if self._calibration is not None else 0

    @property
    def calibration_passes(self) -> int:
        """Calibration passes run: the shared one and one per variant whose observer groups changed."""
        return 1 + self._calibration.recalibrated if self._calibration is not None else 0

    def candidates(self) -> list[Candidate]:
        return list(self._cands)

    def converted(self, float_nodes: frozenset[str]) -> Any:
        key = frozenset(float_nodes)
        if key not in self._converted:
            self._converted[key] = self.calibration.variant(key)
        return self._converted[key]

    def build(self, float_nodes: frozenset[str]) -> Path:
        from edgevit.backends.executorch.export import lower

        key = frozenset(float_nodes)
        if key not in self._built:
            with progress.step(f"int8: lower a variant ({len(key)} of {len(self._cands)} nodes float)"):
                buffer, summary = lower(self.converted(key), self.example)
            path = self.workdir / f"variant{len(self._built)}.pte"
            path.write_bytes(buffer)
            self._built[key] = (path, summary)
        return self._built[key][0]

    def summary(self, float_nodes: frozenset[str]) -> dict[str, Any]:
        return self._built[frozenset(float_nodes)][1]

    def _run_pte(self, path: Path) -> np.ndarray:
        from edgevit.backends import open_runner

        with open_runner("executorch", path, threads=self.threads) as runner:
            return np.concatenate([runner.infer(x[None]) for x in self.holdout])

    def reference(self) -> np.ndarray:
        return self._run_pte(self.float_artifact)

    def outputs(self, float_nodes: frozenset[str]) -> np.ndarray:
        """The lowered program's logits when it is built, else the converted graph's in PyTorch."""
        import torch

        key = frozenset(float_nodes)
        if key in self._built:
            return self._run_pte(self._built[key][0])
        gm = self.converted(key)
        with torch.no_grad():
            return np.concatenate([gm(torch.from_numpy(x[None])).float().numpy() for x in self.holdout])

    def drift(self, float_nodes: frozenset[str]) -> dict[str, float]:
        """Each int8 node's own cosine loss (its dequantized output vs its float input), in PyTorch."""
        import torch

        gm = self.converted(frozenset(float_nodes))
        int8 = {c.name for c in self._cands} - set(float_nodes)
        nodes = {n.name: n for n in gm.graph.nodes}
        io = {}
        for name in int8:
            node = nodes.get(name)
            if node is None or not node.args or not hasattr(node.args[0], "name"):
                continue
            io[name] = ((_float_source(node.args[0]),) * 2, (name, _dequantized(node)))
        meter = DriftMeter(io)
        ref_taps, got_taps = _Taps(self.captured, set(meter.ref_tensors())), _Taps(gm, set(meter.got_tensors()))
        with torch.no_grad():
            for x in self.holdout[:DRIFT_IMAGES]:
                t = torch.from_numpy(x[None])
                meter.add(ref_taps(t), got_taps(t))
        return meter.drift()


def _is_qdq(node: Any, what: str) -> bool:
    return node.op == "call_function" and what in str(node.target)


def _float_source(node: Any) -> str:
    """The float node behind a dequantize(quantize(x)) input chain (x's name, shared with the fp32 graph)."""
    while _is_qdq(node, "dequantize") or _is_qdq(node, "quantize"):
        node = node.args[0]
    return str(node.name)


def _dequantized(node: Any) -> str:
    """The dequantize node after the quantize of `node`'s output (what its consumers read), else itself."""
    for q in node.users:
        if _is_qdq(q, "quantize") and not _is_qdq(q, "dequantize"):
            for dq in q.users:
                if _is_qdq(dq, "dequantize"):
                    return str(dq.name)
    return str(node.name)


def quantize_for_export(model: Any, example: Any, req: "ExportRequest") -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """The executorch exporter's int8 step: (the chosen program's bytes, its delegation summary, metadata)."""
    from edgevit.backends.executorch.costs import ExecuTorchMeasuredCosts
    from edgevit.errors import CalibrationError

    if req.calib is None:
        raise CalibrationError("int8 needs calibration images (a CalibrationSet); none were given")
    settings = settings_from_options(req.options, force=req.int8_force, judge_top1=req.trained_weights)
    settings = dataclasses.replace(settings, max_accuracy_reverts=MAX_ACCURACY_REVERTS)
    holdout = req.calib.holdout if len(req.calib.holdout) else req.calib.calib[:8]
    with tempfile.TemporaryDirectory(prefix="edgevit-et-int8-") as tmp:
        target = ExecuTorchInt8Target(model, example, req.calib, holdout, threads=req.threads, label=req.model_name,
                                      workdir=Path(tmp))
        cost = ExecuTorchMeasuredCosts(example.numpy(), req.threads, target.order)
        artifact, selection = select(target, cost, settings)
        buffer = artifact.read_bytes()
        summary = target.summary(frozenset(selection.float_nodes))
    meta = {"quantizer": "XNNPACKQuantizer(symmetric, per-channel weights)",
            "calibration_images": target.calibration_images,
            "calibration_passes": target.calibration_passes,
            "int8_selection": selection.as_dict(),
            "int8_summary": int8_summary(selection),
            **({"int8_warning": w} if (w := int8_warning(selection)) else {})}
    return buffer, summary, meta
