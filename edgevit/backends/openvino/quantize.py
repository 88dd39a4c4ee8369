"""OpenVINO int8 by NNCF post-training quantization, with the ops kept float where int8 does not pay.

1. `nncf.quantize` on the fp32 OpenVINO model (ModelType.TRANSFORMER unless `model_type=none`; our
   calibration images as the nncf.Dataset).
2. Compile check. OpenVINO 2026.4's CPU plugin rejects some quantized graphs (stvit_small: "Check
   'any_of(scale.size(), OC, 1U)' failed" in dnnl_postops_composer.cpp); the ops whose quantization
   breaks compilation are found by bisection and kept float.
3. Accuracy budget: the worst per-image cosine to OpenVINO fp32 on the hold-out and the embedded photos
   must reach `cosine` (0.995). Otherwise the first op, in topological order, whose quantization breaks
   it is found by bisection (quantize ops[:k], keep the rest float) and kept float, until it holds.
4. Latency: int8 and fp32 run interleaved with OpenVINO's per-node counters; every quantized op is
   charged its runtime nodes (`costs`), and those whose int8 form costs more than their float form
   (by `MARGIN_US` and `MARGIN_REL`) are kept float.
5. Re-quantize with `ignored_scope` = every op kept float (NNCF's own mechanism, so bias correction
   sees the final choice), check compilation and the budget again, and time int8 against fp32 end to
   end (paired). An int8 slower than fp32 in most rounds is refused unless the export's `int8_force` (`--int8-force`).

The searches in steps 2-3 do not re-run NNCF: they remove the FakeQuantize nodes that feed the ops
under test from the quantized model (`dequantize_ops`), which restores their float inputs and weights.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgevit.backends.openvino import costs as cost_mod
from edgevit.errors import CalibrationError, ConfigError, ExportError, Int8NotFasterError
from edgevit.quantize.data import CalibrationSet

COSINE_BUDGET = 0.995  # worst image, to OpenVINO fp32 (issue 18's budget on the real photos)
MARGIN_US = 5.0  # an op stays int8 unless int8 costs this much more than float ...
MARGIN_REL = 0.05  # ... and this fraction of its float cost (per-node counters are noisy)
TIMING_ROUNDS = 40  # paired rounds of the per-node profile and of the end-to-end timing (option `rounds`)
MAX_FIXES = 12  # ops a search may keep float before giving up
MAX_REQUANTIZE = 3
# ops a quantizer's value passes through unchanged on its way to the op that uses it
PASS_THROUGH = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Convert", "Split", "VariadicSplit",
                          "StridedSlice", "Gather"})
MODEL_TYPES = ("transformer", "none")
PRESETS = ("performance", "mixed")
BEFORE_LATENCY = "int8_without_latency_choices"  # the int8 timed beside the final one
OPTION_KEYS = ("int8_ignore", "int8_cosine", "int8_search", "model_type", "rounds")
FORCE_FLAG = "--int8-force"  # the export flag that ships a slower int8 (Python: export(..., int8_force=True))


@dataclass
class Int8Report:
    """What NNCF quantized, which ops stayed float and the measurements that decided it (sidecar)."""

    nncf_version: str
    preset: str
    model_type: str
    calibration_images: int
    threads: int | None
    quantized_ops: int = 0
    float_ops: list[dict[str, Any]] = field(default_factory=list)  # name, type, reason, evidence
    accuracy: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    op_costs: list[dict[str, Any]] = field(default_factory=list)  # every quantized op, first profile
    profile_totals: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for the export output."""
        lat = self.latency
        ratio = f"{lat['speedup_vs_fp32']['median']:.2f}x fp32" if lat.get("speedup_vs_fp32") else "untimed"
        kept = ", ".join(sorted({f["reason"] for f in self.float_ops}))
        return (f"int8 {ratio}, {self.quantized_ops - len(self.float_ops)} ops int8, {len(self.float_ops)} kept "
                f"float ({kept or 'none'}), worst cosine {self.accuracy.get('cosine_min', float('nan')):.4f}")


# ------------------------------------------------------------------------------------- graph helpers


def _consumers(op: Any) -> Iterator[Any]:
    for out in op.outputs():
        for t in out.get_target_inputs():
            yield t.get_node()


def fq_targets(model: Any) -> dict[str, list[str]]:
    """FakeQuantize name -> the ops whose inputs it quantizes (through reshapes and transposes)."""
    out: dict[str, list[str]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        found: list[str] = []
        stack, seen = list(_consumers(op)), set()
        while stack:
            node = stack.pop()
            name = node.get_friendly_name()
            if name in seen or node.get_type_name() in ("FakeQuantize", "Result"):
                continue
            seen.add(name)
            if node.get_type_name() in PASS_THROUGH:
                stack.extend(_consumers(node))
            else:
                found.append(name)
        out[op.get_friendly_name()] = found
    return out


def quantized_ops(model: Any) -> dict[str, str]:
    """Name -> type of every op fed by a FakeQuantize, in topological order."""
    ops = model.get_ordered_ops()
    by_name = {op.get_friendly_name(): op for op in ops}
    order = {name: i for i, name in enumerate(by_name)}
    names = {q for targets in fq_targets(model).values() for q in targets}
    return {q: by_name[q].get_type_name() for q in sorted(names, key=order.__getitem__)}


def float_biases(fp32: Any) -> dict[str, np.ndarray]:
    """The fp32 model's constants that feed an Add (the biases), by name: NNCF's fast bias correction
    rewrites those of the ops it quantizes, in place and under the same names."""
    out = {}
    for op in fp32.get_ordered_ops():
        if op.get_type_name() == "Constant" and any(
                t.get_node().get_type_name() == "Add" for t in op.output(0).get_target_inputs()):
            out[op.get_friendly_name()] = op.get_data().copy()
    return out


def _restore_bias(op: Any, biases: Mapping[str, np.ndarray]) -> None:
    """Put back the fp32 bias of the Add that follows `op` (directly or through pass-through ops)."""
    from openvino import opset13

    frontier = [t.get_node() for t in op.output(0).get_target_inputs()]
    for node in frontier:
        if node.get_type_name() in PASS_THROUGH:
            frontier += [t.get_node() for t in node.output(0).get_target_inputs()]
        elif node.get_type_name() == "Add":
            for port in node.inputs():
                src = port.get_source_output().get_node()
                name = src.get_friendly_name()
                if src.get_type_name() == "Constant" and name in biases and not np.array_equal(
                        src.get_data(), biases[name]):
                    port.replace_source_output(opset13.constant(biases[name]).output(0))


def dequantize_ops(model: Any, names: set[str], biases: Mapping[str, np.ndarray] | None = None) -> Any:
    """A copy of `model` where the FakeQuantize nodes feeding `names` are bypassed: those ops see their
    float inputs and weights again (the ops a search keeps float, without re-running NNCF). `biases`
    (`float_biases` of the fp32 model) also undoes bias correction on them: a corrected bias without its
    quantizer is wrong in float (on seeded weights it cost a toy ViT's worst cosine 0.976)."""
    copy = model.clone()
    for op in copy.get_ordered_ops():
        if op.get_friendly_name() not in names:
            continue
        for port in op.inputs():
            edge, src = port, port.get_source_output().get_node()
            while src.get_type_name() in PASS_THROUGH and src.get_input_size() > 0:
                edge, src = src.input(0), src.input_value(0).get_node()
            if src.get_type_name() == "FakeQuantize":
                edge.replace_source_output(src.input_value(0))
        if biases:
            _restore_bias(op, biases)
    copy.validate_nodes_and_infer_types()
    return copy


# ------------------------------------------------------------------------------------------ running


def _runner(model: Any, threads: int | None, precision: str, **options: Any) -> Any:
    from edgevit.backends.openvino.runner import DEFAULT_INFERENCE_PRECISION, OpenVinoRunner

    r = OpenVinoRunner(threads=threads, precision_hint=DEFAULT_INFERENCE_PRECISION[precision], **options)
    r.load_model(model)
    return r


def _compile_error(model: Any, threads: int | None) -> str | None:
    """The plugin's error compiling `model` as it ships (weights compressed: the folded int8 constants
    can fail where the FakeQuantize form compiles), or None."""
    try:
        _runner(compress_weights(model), threads, "int8").close()
    except ExportError as exc:
        return str(exc)
    return None


def run_images(runner: Any, images: np.ndarray, batch: int) -> np.ndarray:
    """Outputs for every image, in chunks of the artifact's batch (the last one padded)."""
    from edgevit.verify import _run_batched

    return _run_batched(runner.infer, images, batch)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-300)


def first_breaking(ops: Sequence[str], breaks: Callable[[set[str]], bool]) -> tuple[str, int]:
    """The first op in `ops` whose quantization, with every earlier op quantized and every later one
    float, makes `breaks(float_ops)` true; and how many evaluations that took. `breaks` must hold with
    no op float and fail with every op float."""
    lo, hi, evals = 0, len(ops), 0  # quantizing ops[:lo] does not break, ops[:hi] does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        evals += 1
        if breaks(set(ops[mid:])):
            hi = mid
        else:
            lo = mid
    return ops[hi - 1], evals


def keep_float_until(ops: Sequence[str], kept: set[str], breaks: Callable[[set[str]], bool], what: str,
                     siblings: Callable[[str], list[str]] | None = None, limit: int = MAX_FIXES) -> list[str]:
    """Ops (besides `kept`) to keep float, found one by one with `first_breaking`, until `breaks` is false.

    `siblings(op)`: ops of the same kind, each tested alone (only it quantized) once `op` is found; a
    local failure such as a rejected fusion reproduces alone, and one test is cheaper than a bisection."""
    found: list[str] = []
    tested: set[str] = set()
    while breaks(kept | set(found)):
        rest = [o for o in ops if o not in kept and o not in found]
        if not rest or breaks(kept | set(found) | set(rest)):
            raise ExportError(f"int8: {what} fails even with every quantized op float")
        if len(found) >= limit:
            raise ExportError(f"int8: {what} still fails after keeping {len(found)} ops float ({', '.join(found)})")
        op, _ = first_breaking(rest, lambda fl: breaks(kept | set(found) | fl))
        found.append(op)
        for sib in (siblings(op) if siblings else []):
            if sib not in found and sib not in kept and sib not in tested:
                tested.add(sib)
                if breaks(set(ops) - {sib}):
                    found.append(sib)
    return found


def signature(model: Any) -> dict[str, tuple[Any, ...]]:
    """Op name -> (type, input ranks, which inputs are constants, attributes): ops of the same kind."""
    out = {}
    for op in model.get_ordered_ops():
        ins = [op.input_value(i) for i in range(op.get_input_size())]
        out[op.get_friendly_name()] = (
            op.get_type_name(), tuple(v.get_partial_shape().rank.get_length() for v in ins),
            tuple(cost_mod._is_constant(v.get_node()) for v in ins), tuple(sorted(map(str, op.get_attributes().items()))),
        )
    return out


# ------------------------------------------------------------------------------------------- NNCF


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs at INFO and draws its progress bars on stdout: errors only, bars on stderr (scoped)."""
    log = logging.getLogger("nncf")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        log.setLevel(level)


def nncf_quantize(model: Any, calib: CalibrationSet, *, batch: int, preset: str, model_type: str,
                  ignored: Sequence[str]) -> Any:
    """One NNCF post-training quantization of an fp32 OpenVINO model, its weights left behind FakeQuantize
    nodes (NNCF otherwise stores them as int8 constants, which `dequantize_ops` could not make float
    again); `compress_weights` stores them as int8 for the artifact."""
    import nncf
    from nncf.openvino.quantization.backend_parameters import BackendParameters
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    data = [np.ascontiguousarray(np.repeat(x, batch, axis=0)) if batch > 1 else x for x in calib.batches(1)]
    kwargs: dict[str, Any] = {"advanced_parameters": AdvancedQuantizationParameters(
        backend_params={BackendParameters.COMPRESS_WEIGHTS: False})}
    if model_type == "transformer":
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        kwargs["ignored_scope"] = nncf.IgnoredScope(names=sorted(ignored), validate=True)
    try:
        with _quiet_nncf():
            return nncf.quantize(model.clone(), nncf.Dataset(data), subset_size=len(data),
                                 preset=getattr(nncf.QuantizationPreset, preset.upper()), **kwargs)
    except nncf.ValidationError as exc:
        raise ConfigError(f"int8_ignore: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - NNCF raises its own and OpenVINO's types
        raise ExportError(f"NNCF quantization failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def compress_weights(model: Any) -> Any:
    """A copy with the FakeQuantize of every constant weight folded into int8 constants (what NNCF does by
    default): the artifact's weights take a quarter of the space, and it computes the same."""
    from openvino._offline_transformations import compress_quantize_weights_transformation

    copy = model.clone()
    compress_quantize_weights_transformation(copy)
    return copy


# ------------------------------------------------------------------------------------- the procedure


@dataclass
class Int8Settings:
    """The int8 options of an export (`-O KEY=VALUE`), checked."""

    preset: str = "performance"
    model_type: str = "transformer"
    ignore: tuple[str, ...] = ()
    force: bool = False
    cosine: float = COSINE_BUDGET
    search: bool = True
    rounds: int = TIMING_ROUNDS

    @classmethod
    def from_options(cls, options: dict[str, Any], preset: str | None, *, force: bool = False) -> Int8Settings:
        """Settings from `-O` options; `force` is the export's `int8_force` (`--int8-force`)."""
        preset = preset or "performance"
        if preset not in PRESETS:
            raise ConfigError(f"openvino int8 preset must be one of {', '.join(PRESETS)}, not {preset!r}")
        model_type = str(options.get("model_type", "transformer")).lower()
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"openvino model_type must be one of {', '.join(MODEL_TYPES)}, not {model_type!r}")
        raw = options.get("int8_ignore", "")
        ignore = tuple(n.strip() for n in (raw if isinstance(raw, (list, tuple)) else str(raw).split(",")) if n.strip())
        cosine = options.get("int8_cosine", COSINE_BUDGET)
        if not isinstance(cosine, (int, float)) or isinstance(cosine, bool) or not 0 < float(cosine) <= 1:
            raise ConfigError(f"int8_cosine must be a number in (0, 1], not {cosine!r}")
        rounds = options.get("rounds", TIMING_ROUNDS)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 3:
            raise ConfigError(f"rounds must be an integer of at least 3, not {rounds!r}")
        if "int8_search" in options and not isinstance(options["int8_search"], bool):
            raise ConfigError(f"int8_search must be true or false, not {options['int8_search']!r}")
        return cls(preset=preset, model_type=model_type, ignore=ignore, force=force,
                   cosine=float(cosine), search=bool(options.get("int8_search", True)), rounds=rounds)


def _float_entry(name: str, op_type: str, reason: str, **evidence: Any) -> dict[str, Any]:
    return {"name": name, "type": op_type, "reason": reason, **evidence}


def quantize_openvino(
    fp32: Any, calib: CalibrationSet, images: np.ndarray, *, batch: int, threads: int | None,
    settings: Int8Settings, progress: Callable[[str], None] = lambda _: None,
) -> tuple[Any, Int8Report]:
    """int8 OpenVINO model and its report (module docstring). `images`: budget images (hold-out + photos)."""
    import nncf

    if len(calib.calib) == 0:
        raise CalibrationError("no calibration images")
    report = Int8Report(nncf_version=nncf.__version__, preset=settings.preset, model_type=settings.model_type,
                        calibration_images=len(calib.calib), threads=threads)
    kept: dict[str, dict[str, Any]] = {}
    biases = float_biases(fp32)
    progress("NNCF quantization")
    q0 = nncf_quantize(fp32, calib, batch=batch, preset=settings.preset, model_type=settings.model_type,
                       ignored=settings.ignore)
    qops = quantized_ops(q0)
    report.quantized_ops = len(qops) + len(settings.ignore)
    for name in settings.ignore:
        kept[name] = _float_entry(name, "", "asked (int8_ignore)")
    names = list(qops)

    # 2. the plugin must compile it
    def compile_fixes(model: Any, step: str) -> None:
        """Keep float the ops of `model` whose quantization OpenVINO cannot compile (none if it compiles)."""
        if (err := _compile_error(model, threads)) is None:
            return
        progress(f"int8: finding the ops OpenVINO cannot compile quantized ({step})")
        ops = quantized_ops(model)
        sig = signature(model)
        same = {n: [m for m in ops if m != n and sig[m] == sig[n]] for n in ops}
        for op in keep_float_until(list(ops), set(), lambda fl: _compile_error(dequantize_ops(model, fl, biases), threads)
                                   is not None, "compilation", siblings=same.__getitem__, limit=len(ops)):
            kept[op] = _float_entry(op, ops[op], "compile", error=err, step=step)

    compile_fixes(q0, "first quantization")

    # 3. accuracy budget against OpenVINO fp32
    ref_runner = _runner(fp32, threads, "fp32")
    ref = run_images(ref_runner, images, batch)

    checks = [0]

    def worst_cosine(model: Any) -> float:
        checks[0] += 1
        progress(f"int8: accuracy check {checks[0]}")
        r = _runner(model, threads, "int8")
        try:
            return float(cosine_rows(ref, run_images(r, images, batch)).min())
        finally:
            r.close()

    if settings.search:
        progress("int8: accuracy budget")
        budget_fixes = keep_float_until(
            [n for n in names if n not in kept], set(kept) - set(settings.ignore),
            lambda fl: worst_cosine(dequantize_ops(q0, fl, biases)) < settings.cosine, f"cosine >= {settings.cosine}")
        for op in budget_fixes:
            kept[op] = _float_entry(op, qops[op], "accuracy", budget=settings.cosine)

        # 4. per-node costs, int8 (with the float choices so far) vs fp32
        progress("int8: per-node costs")
        current = dequantize_ops(q0, set(kept) - set(settings.ignore), biases)
        x = images[:batch] if len(images) >= batch else np.repeat(images[:1], batch, axis=0)
        slow = _slow_ops(fp32, current, x, threads, qops, kept, report, settings.rounds)
        for c in slow:
            kept[c.name] = _float_entry(c.name, c.op_type, "latency", int8_us=round(c.int8_us, 2),
                                        float_us=round(c.float_us, 2), nodes=c.int8_nodes)
    else:
        current = None
    # 5. final NNCF run with every float choice in its ignored scope, checked again
    def settle() -> Any:
        """NNCF with `kept` as its ignored scope, repeated until it compiles and meets the budget (quantizer
        placement moves when ops are ignored, so a new op can fail). Returns the shipped form, weights
        folded."""
        for attempt in range(MAX_REQUANTIZE):
            progress("int8: NNCF quantization with the float ops in its ignored scope")
            model = nncf_quantize(fp32, calib, batch=batch, preset=settings.preset, model_type=settings.model_type,
                                  ignored=sorted(kept))
            before = len(kept)
            compile_fixes(model, f"re-quantization {attempt + 1}")
            if len(kept) == before and settings.search and worst_cosine(model) < settings.cosine:
                progress("int8: accuracy budget after re-quantization")
                fq = quantized_ops(model)
                for op in keep_float_until(list(fq), set(), lambda fl, m=model: worst_cosine(dequantize_ops(m, fl, biases))
                                           < settings.cosine, f"cosine >= {settings.cosine} after re-quantization"):
                    kept[op] = _float_entry(op, fq[op], "accuracy", budget=settings.cosine,
                                            step=f"re-quantization {attempt + 1}")
            if len(kept) == before:
                return compress_weights(model)
        raise ExportError(f"int8: still failing after {MAX_REQUANTIZE} re-quantizations (ops kept float: {len(kept)})")

    final = compress_weights(q0) if set(kept) == set(settings.ignore) else settle()
    report.float_ops = list(kept.values())
    int8_runner = _runner(final, threads, "int8")

    def accuracy(runner: Any) -> dict[str, Any]:
        out = run_images(runner, images, batch)
        cos = cosine_rows(ref, out)
        return {"reference": "OpenVINO fp32 (f32 inference precision)", "images": len(images),
                "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
                "top1_agreement": float((ref.argmax(1) == out.argmax(1)).mean()),
                "budget_cosine_min": settings.cosine, "judged": settings.search}

    report.accuracy = accuracy(int8_runner)

    progress("int8: paired timing against fp32")
    runners = {"fp32": ref_runner, "int8": int8_runner}
    if current is not None and any(f["reason"] == "latency" for f in kept.values()):
        runners[BEFORE_LATENCY] = _runner(current, threads, "int8")
    report.latency = _paired(runners, images, batch, settings.rounds, threads)
    gain = report.latency.get("latency_choices_gain")
    if gain is not None and gain["p90"] < 1.0:  # the per-node choices made it slower end to end: undo them
        progress("int8: NNCF quantization without the latency choices")
        dropped = [k for k, f in kept.items() if f["reason"] == "latency"]
        for k in dropped:
            del kept[k]
        final = settle()
        report.float_ops = list(kept.values())
        int8_runner.close()
        int8_runner = _runner(final, threads, "int8")
        report.accuracy = accuracy(int8_runner)
        if settings.search and report.accuracy["cosine_min"] < settings.cosine:
            raise ExportError(f"int8: worst cosine {report.accuracy['cosine_min']:.4f} < {settings.cosine} after "
                              "undoing the latency choices; pass -O int8_cosine=... or export fp32")
        report.notes.append(f"the {len(dropped)} ops the per-node costs chose to keep float made int8 slower end to "
                            f"end ({gain['median']:.2f}x, p10-p90 {gain['p10']:.2f}-{gain['p90']:.2f}); undone")
        report.latency = {**_paired({"fp32": ref_runner, "int8": int8_runner}, images, batch, settings.rounds, threads),
                          "undone_latency_choices": report.latency}
    for r in runners.values():
        r.close()
    int8_runner.close()
    sp = report.latency["speedup_vs_fp32"]
    if sp["p90"] < 1.0 and not settings.force:
        raise Int8NotFasterError(
            f"int8 is slower than fp32 in OpenVINO here: {sp['median']:.2f}x fp32 (p10-p90 {sp['p10']:.2f}-"
            f"{sp['p90']:.2f}, {settings.rounds} paired rounds, {threads or 'default'} threads); export fp32, or "
            f"pass {FORCE_FLAG} (Python: int8_force=True) to write it anyway"
        )
    if sp["p90"] < 1.0:
        report.notes.append(f"int8 is slower than fp32 ({sp['median']:.2f}x, p90 {sp['p90']:.2f}); shipped by {FORCE_FLAG}")
    elif sp["median"] < 1.0:
        report.notes.append(f"int8 median {sp['median']:.2f}x fp32, within noise (p90 {sp['p90']:.2f})")
    return final, report


def _slow_ops(fp32: Any, current: Any, x: np.ndarray, threads: int | None, qops: dict[str, str],
              kept: dict[str, Any], report: Int8Report, rounds: int) -> list[cost_mod.OpCost]:
    """The quantized ops whose int8 form costs more than their float form (per-node counters)."""
    f_run = _runner(fp32, threads, "fp32", perf_count=True)
    i_run = _runner(current, threads, "int8", perf_count=True)
    try:
        f_times, i_times = cost_mod.profile([f_run, i_run], x, rounds)
        live = {q: t for q, t in qops.items() if q not in kept}
        costs, totals = cost_mod.op_costs(cost_mod.runtime_graph(f_run.compiled), f_times,
                                          cost_mod.runtime_graph(i_run.compiled), i_times, live, fq_targets(current),
                                          cost_mod.aliases(fp32, list(live)))
    finally:
        f_run.close()
        i_run.close()
    report.op_costs = [c.as_dict() for c in costs]
    report.profile_totals = {k: round(v, 3) for k, v in totals.items()}
    return [c for c in costs if c.delta_us > max(MARGIN_US, MARGIN_REL * c.float_us)]


def _paired(runners: dict[str, Any], images: np.ndarray, batch: int, rounds: int,
            threads: int | None) -> dict[str, Any]:
    """Interleaved end-to-end timing of fp32, int8 and (when given) int8 before the latency choices."""
    from edgevit.bench.paired import interleaved, speedup, summary

    x = images[:batch] if len(images) >= batch else np.repeat(images[:1], batch, axis=0)
    s = interleaved(runners, x, rounds, warmup=5)
    out: dict[str, Any] = {"rounds": rounds, "threads": threads, "batch": batch,
                           **{k: summary(v) for k, v in s.items()},
                           "speedup_vs_fp32": speedup(s["fp32"], s["int8"]),
                           "note": "interleaved in one process during export; a loaded machine moves all alike"}
    if BEFORE_LATENCY in s:
        out[f"{BEFORE_LATENCY}_vs_fp32"] = speedup(s["fp32"], s[BEFORE_LATENCY])
        out["latency_choices_gain"] = speedup(s[BEFORE_LATENCY], s["int8"])
    return out
