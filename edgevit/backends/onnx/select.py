"""The onnx target's side of latency-aware mixed precision (`edgevit.quantize.select`): its candidates
are the Conv/MatMul/Gemm nodes of the pre-processed graph, a variant is one QDQ rewrite from the cached
calibration with some of them kept float, and everything runs in ONNX Runtime (CPU) as shipped.

Measuring needs the preset of this machine (x86 here, arm64 on an ARM host): another preset's kernels
(TensorRT, ARM dot-product on an x86 host) are not the ones timed here, so such exports keep the
preset's static rules and say that their speed was not measured.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgevit import progress
from edgevit.quantize.budget import DriftMeter
from edgevit.quantize.select import (
    Candidate,
    Selection,
    int8_summary,
    int8_warning,
    select,
    settings_from_options,
)

if TYPE_CHECKING:
    from edgevit.backends.base import ExportRequest
    from edgevit.backends.onnx.quantize import Prepared


DRIFT_IMAGES = 4  # hold-out images the drift ranking runs (it only orders the candidates to try)


def _session(path: Path, threads: int | None, level: str = "ORT_ENABLE_ALL") -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feed(x: np.ndarray, batch: int) -> np.ndarray:
    """One image (1, C, H, W) repeated to a fixed batch."""
    return np.ascontiguousarray(np.repeat(x, batch, axis=0) if batch > 1 else x, dtype=np.float32)


class OnnxInt8Target:
    """Int8Target for ONNX Runtime: variants written from one calibration, run on the hold-out."""

    runtime = "onnxruntime"

    def __init__(self, prep: "Prepared", workdir: Path, holdout: np.ndarray, *, threads: int | None, batch: int,
                 label: str) -> None:
        self.prep, self.workdir, self.holdout = prep, workdir, holdout
        self.threads, self.batch, self.label = threads, batch, label
        self.float_artifact = prep.pre  # the fp32 graph after ORT's basic optimisations (ORT applies them at load)
        self._built: dict[frozenset[str], Path] = {}

    def candidates(self) -> list[Candidate]:
        user = set(self.prep.user_exclude)
        return [Candidate(n, k, w) for n, k, w in self.prep.candidates if n not in user]

    def build(self, float_nodes: frozenset[str]) -> Path:
        from edgevit.backends.onnx.quantize import write_variant

        key = frozenset(float_nodes) | frozenset(self.prep.user_exclude)
        if key not in self._built:
            path = self.workdir / f"variant{len(self._built)}.onnx"
            with progress.step(f"int8: write a variant ({len(key)} of {len(self.prep.candidates)} nodes float)"):
                write_variant(self.prep, key, path)
            self._built[key] = path
        return self._built[key]

    def _run(self, path: Path) -> np.ndarray:
        sess = _session(path, self.threads)
        name = sess.get_inputs()[0].name
        return np.concatenate([sess.run(None, {name: _feed(x[None], self.batch)})[0][:1] for x in self.holdout])

    def reference(self) -> np.ndarray:
        return self._run(self.float_artifact)

    def outputs(self, float_nodes: frozenset[str]) -> np.ndarray:
        return self._run(self.build(float_nodes))

    def drift(self, float_nodes: frozenset[str]) -> dict[str, float]:
        """Each int8 node's own cosine loss: its (dequantized) output vs its float input, int8 vs fp32."""
        import onnx

        variant = self.build(float_nodes)
        pre, q = onnx.load(str(self.float_artifact)), onnx.load(str(variant))
        int8 = {c.name for c in self.candidates()} - set(float_nodes)
        skip = {i.name for i in pre.graph.input}
        dq = _dequantized(q)
        io = {n.name: ((n.input[0], n.input[0]), (n.output[0], dq.get(n.output[0], n.output[0])))
              for n in pre.graph.node if n.name in int8}
        # Only tensors both graphs compute: the quantizer may fold or rename a tensor (stvit_small's gathers);
        # a node without taps gets no drift figure and is ranked last.
        have_pre, have_q = _tensor_names(pre), _tensor_names(q)
        io = {k: v for k, v in io.items() if all(t in have_pre for t in v[0]) and all(t in have_q for t in v[1])}
        meter = DriftMeter(io)
        ref_names = [t for t in meter.ref_tensors() if t not in skip]
        got_names = [t for t in meter.got_tensors() if t not in skip]
        sessions = [_session(_with_outputs(m, names, self.workdir / f"taps{i}.onnx"), self.threads, "ORT_ENABLE_BASIC")
                    for i, (m, names) in enumerate(((pre, ref_names), (q, got_names)))]
        for x in self.holdout[:DRIFT_IMAGES]:
            runs = []
            for s, names in zip(sessions, (ref_names, got_names)):
                outs = s.run(names, {s.get_inputs()[0].name: _feed(x[None], self.batch)})
                runs.append(dict(zip(names, outs)))
            meter.add(runs[0], runs[1])
        return meter.drift()


def _tensor_names(model: Any) -> set[str]:
    """The tensors a graph computes or is fed (not its initializers: a constant cannot be a tapped output)."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    return ({i.name for i in g.input} - inits) | {o for n in g.node for o in n.output}


def _dequantized(model: Any) -> dict[str, str]:
    """float tensor -> the DequantizeLinear output its consumers read, where QDQ quantized it."""
    q_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    dq_of = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return {t: dq_of[q] for t, q in q_of.items() if q in dq_of}


def _with_outputs(model: Any, names: list[str], dst: Path) -> Path:
    """A copy of `model` that also returns the tensors `names` (float) as graph outputs."""
    import copy

    import onnx

    model = copy.deepcopy(model)
    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have:
            model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(dst))
    return dst


def quantize_for_export(fp32: Path, out: Path, req: "ExportRequest") -> dict[str, Any]:
    """The onnx exporter's int8 step: calibrate once, select the precision per node, write `out`.
    Returns the exporter metadata (`int8`, `int8_selection`, `int8_summary`)."""
    from edgevit.backends.onnx.costs import OrtMeasuredCosts
    from edgevit.backends.onnx.quantize import default_preset, prepare_onnx, report_for
    from edgevit.errors import ExportError

    if req.calib is None:
        raise ExportError("int8 needs calibration images (the pipeline passes them)")
    batch = 1 if req.dynamic_batch else req.batch
    with tempfile.TemporaryDirectory(prefix="edgevit-int8-") as tmp:
        work = Path(tmp)
        prep = prepare_onnx(fp32, work, req.calib, method=req.calib_method, preset=req.preset, batch=batch,
                            options=req.options.get("quant"))
        if prep.preset["key"] != default_preset():  # another machine's kernels: nothing to measure here
            shutil.copyfile(prep.static_variant, out)
            note = (f"preset {prep.preset['key']} runs on other kernels than this {default_preset()} host's: "
                    "the preset's static rules, speed not measured")
            return {"int8": report_for(prep, len(prep.static_exclude)).as_dict(),
                    "int8_selection": {"runtime": "onnxruntime", "mode": "static", "outcome": "not measured",
                                       "note": note},
                    "int8_summary": f"onnxruntime int8 (static): {note}"}
        settings = settings_from_options(req.options, force=req.int8_force, static_float=tuple(prep.static_exclude),
                                         judge_top1=req.trained_weights)
        holdout = req.calib.holdout if len(req.calib.holdout) else req.calib.calib[:8]
        target = OnnxInt8Target(prep, work, holdout, threads=req.threads, batch=batch, label=req.model_name)
        cost = OrtMeasuredCosts(_feed(holdout[:1], batch), req.threads, prep.pre)
        artifact, selection = select(target, cost, settings)
        with progress.step("int8: write the chosen variant"):
            shutil.copyfile(artifact, out)
        excluded = len(selection.float_nodes) + len(prep.user_exclude)
    return {"int8": report_for(prep, excluded).as_dict(), "int8_selection": selection.as_dict(),
            "int8_summary": int8_summary(selection),
            **({"int8_warning": w} if (w := int8_warning(selection)) else {})}


__all__ = ["OnnxInt8Target", "Selection", "quantize_for_export"]
