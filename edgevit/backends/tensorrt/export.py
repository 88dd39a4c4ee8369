"""TensorRT target: a serialized engine (plain TensorRT plan, `.engine`) built from edgevit's own ONNX
with the TensorRT 10 Python API.

- Source: the `onnx` target's exporter (dynamo, opset 20, so LayerNorm is one `LayerNormalization`
  node that TensorRT maps to an INormalizationLayer). Never an ORT-optimised graph: ORT's fused ops
  (`com.microsoft::*`) do not parse in TensorRT (LightGlue-ONNX#43). The ONNX is linted with Polygraphy
  (`polygraphy check lint`) before it is handed over, which also runs here without a GPU.
- fp16: `BuilderFlag.FP16`, with every normalization layer pinned to fp32
  (`OBEY_PRECISION_CONSTRAINTS`), since LayerNorm overflows in fp16 (NVIDIA/TensorRT#2564).
- int8: explicit Q/DQ from the ONNX `tensorrt` int8 preset (static, symmetric s8/s8) by default,
  built weakly typed with INT8+FP16 or `strongly_typed`; or `int8_method=calibrator` for TensorRT's
  entropy calibrator on the same images, with a calibration cache. int8 is often not faster than fp16
  for ViTs (FasterViT#71): build and report both.
- Dynamic batch: one optimization profile (min 1, opt = --batch, max = `max_batch`).
- The engine file is exactly `build_serialized_network`'s bytes; facts and the equivalent `trtexec`
  command go to the sidecar JSON.

Pure decisions (flags, profile, workspace, which layers stay fp32, the trtexec line) live in
`plan_build`/`keep_fp32`, testable without TensorRT; everything that needs TensorRT runs only where
`edgevit.backends.tensorrt.runner.probe()` says it is available.
"""
from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevit.errors import ConfigError, ExportError
from edgevit.backends.base import ExportRequest, ExportResult

INT8_METHODS = ("qdq", "calibrator")
DEFAULT_WORKSPACE_MIB = 4096
DEFAULT_MAX_BATCH = 32
KEEP_FP32_LAYER_TYPES = ("NORMALIZATION",)  # TensorRT LayerType names pinned to fp32 under fp16/int8


@dataclass
class BuildPlan:
    """Every builder decision for one engine, decided without TensorRT."""

    precision: str
    input_name: str
    input_shape: tuple[int, ...]
    int8_method: str = ""  # "qdq" | "calibrator" | "" (not int8)
    strongly_typed: bool = False
    flags: tuple[str, ...] = ()  # trt.BuilderFlag names
    workspace_mib: int = DEFAULT_WORKSPACE_MIB
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None  # min, opt, max
    keep_fp32_types: tuple[str, ...] = ()
    keep_fp32_names: tuple[str, ...] = ()  # substrings of layer names, from options
    calib_cache: str | None = None
    onnx_preset: str | None = None  # int8 preset of the ONNX fed to TensorRT ("tensorrt" for QDQ)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def trtexec(self, onnx: str, engine: str, fp32_layers: list[str] | None = None) -> str:
        """The equivalent `trtexec` command line (for reproducing the build outside edgevit)."""
        args = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
                f"--memPoolSize=workspace:{self.workspace_mib}M"]
        if self.strongly_typed:
            args.append("--stronglyTyped")
        for flag in self.flags:
            if flag in ("FP16", "INT8"):
                args.append(f"--{flag.lower()}")
        if self.profile is not None:
            lo, opt, hi = ("x".join(str(d) for d in s) for s in self.profile)
            args += [f"--minShapes={self.input_name}:{lo}", f"--optShapes={self.input_name}:{opt}",
                     f"--maxShapes={self.input_name}:{hi}"]
        else:
            args.append(f"--shapes={self.input_name}:{'x'.join(str(d) for d in self.input_shape)}")
        if fp32_layers:
            args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in fp32_layers)]
        if self.int8_method == "calibrator" and self.calib_cache:
            args.append(f"--calib={self.calib_cache}")
        return shlex.join(args)


def _int(options: dict[str, Any], key: str, default: int) -> int:
    try:
        value = int(options.get(key, default))
    except (TypeError, ValueError):
        raise ConfigError(f"option {key} must be an integer, got {options.get(key)!r}") from None
    if value < 1:
        raise ConfigError(f"option {key} must be at least 1, got {value}")
    return value


def plan_build(req: ExportRequest) -> BuildPlan:
    """Decide flags, profile, workspace and fp32 pins from the request (pure; no TensorRT needed)."""
    opts = dict(req.options)
    shape = tuple(int(d) for d in req.example.shape)
    plan = BuildPlan(precision=req.precision, input_name="input", input_shape=shape,
                     workspace_mib=_int(opts, "workspace_mib", DEFAULT_WORKSPACE_MIB))
    if req.dynamic_batch:
        max_batch = _int(opts, "max_batch", max(DEFAULT_MAX_BATCH, req.batch))
        if max_batch < req.batch:
            raise ConfigError(f"option max_batch ({max_batch}) is smaller than --batch ({req.batch})")
        chw = shape[1:]
        plan.profile = ((1, *chw), (req.batch, *chw), (max_batch, *chw))
    names = opts.get("fp32_layers") or ()
    plan.keep_fp32_names = tuple(n for n in (names.split(",") if isinstance(names, str) else names) if n)
    plan.strongly_typed = bool(opts.get("strongly_typed", False))
    if req.precision == "fp32":
        if plan.strongly_typed:
            plan.notes.append("strongly typed: precisions follow the ONNX types")
        return plan
    if req.precision == "fp16":
        if plan.strongly_typed:
            raise ConfigError("strongly_typed engines take their precision from the ONNX; use it with int8 QDQ or fp32")
        plan.flags = ("FP16", "OBEY_PRECISION_CONSTRAINTS")
        plan.keep_fp32_types = KEEP_FP32_LAYER_TYPES
        return plan
    if req.precision != "int8":
        raise ConfigError(f"tensorrt has no {req.precision}; it offers fp32, fp16, int8")
    method = str(opts.get("int8_method", "qdq"))
    if method not in INT8_METHODS:
        raise ConfigError(f"unknown TensorRT int8 method {method!r}; choose one of: {', '.join(INT8_METHODS)}")
    if req.calib is None and not (method == "calibrator" and opts.get("calib_cache")):
        raise ConfigError("TensorRT int8 needs calibration images (or int8_method=calibrator with calib_cache=PATH)")
    plan.int8_method = method
    if method == "qdq":
        plan.onnx_preset = "tensorrt"
        if plan.strongly_typed:
            plan.notes.append("strongly typed: int8 exactly where the ONNX has Q/DQ, the rest in the ONNX's fp32")
        else:
            plan.flags = ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
            plan.keep_fp32_types = KEEP_FP32_LAYER_TYPES
    else:
        if plan.strongly_typed:
            raise ConfigError("the int8 calibrator needs a weakly typed network: drop strongly_typed")
        plan.flags = ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")
        plan.keep_fp32_types = KEEP_FP32_LAYER_TYPES
        plan.calib_cache = str(opts["calib_cache"]) if opts.get("calib_cache") else None
        plan.notes.append("implicit int8 (entropy calibrator) is deprecated in TensorRT 10; qdq is the default")
    return plan


def keep_fp32(layer_type: str, layer_name: str, plan: BuildPlan) -> bool:
    """Whether a layer is pinned to fp32: its type is in the plan's list, or its name matches a pattern."""
    return layer_type in plan.keep_fp32_types or any(p in layer_name for p in plan.keep_fp32_names)


# ------------------------------------------------------------------------------------ ONNX hand-over


def prepare_onnx(req: ExportRequest, plan: BuildPlan, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """The ONNX TensorRT parses: the onnx target's fp32 export, or its int8 `tensorrt` QDQ preset.

    fp16 engines are built from the fp32 ONNX with the FP16 flag (never from an fp16 ONNX)."""
    from edgevit.backends.onnx.export import export_onnx

    precision = "int8" if plan.onnx_preset else "fp32"
    sub = dataclasses.replace(req, output=workdir / "model.onnx", precision=precision, preset=plan.onnx_preset,
                              options={k: v for k, v in req.options.items() if k in ("exporter", "quant")})
    result = export_onnx(sub)
    return result.artifact, {"onnx_precision": precision, "onnx_preset": plan.onnx_preset, "onnx": result.metadata}


def lint_onnx(path: Path, *, timeout: float = 300) -> dict[str, Any]:
    """`polygraphy check lint` (ONNX checker + ONNX Runtime per node) on the ONNX handed to TensorRT.

    Returns {"status": "passed"|"failed"|"skipped", ...}; skipped names what to install."""
    import importlib.util
    import json

    missing = [m for m in ("polygraphy", "onnx_graphsurgeon") if importlib.util.find_spec(m) is None]
    if missing:
        return {"status": "skipped", "reason": f"{', '.join(missing)} not installed: pip install 'edgevit[tensorrt]'"}
    report = Path(path).with_suffix(".lint.json")
    main = "import sys; from polygraphy.tools import main; sys.exit(main())"
    cmd = [sys.executable, "-c", main, "check", "lint", str(path), "-o", str(report)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"polygraphy lint timed out after {timeout:.0f} s"}
    if not report.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": "failed", "reason": tail[0]}
    data = json.loads(report.read_text())
    failing = data.get("summary", {}).get("failing", [])
    entries = [f"{e.get('level', '')}: {e.get('message', '')}"[:200] for e in data.get("lint_entries", [])]
    return {
        "status": "passed" if proc.returncode == 0 and not failing else "failed",
        "passing_nodes": len(data.get("summary", {}).get("passing", [])),
        "failing_nodes": failing,
        "entries": entries[:20],
    }


# ------------------------------------------------------------------------------------ the build


def build_engine(onnx_path: Path, plan: BuildPlan, req: ExportRequest) -> tuple[bytes, dict[str, Any]]:
    """Parse the ONNX, configure the builder from `plan`, build; returns the plan bytes and facts."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise ExportError("TensorRT cannot parse the ONNX: " + "; ".join(errors[:3]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mib << 20)
    for name in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    pinned: list[str] = []
    if plan.keep_fp32_types or plan.keep_fp32_names:
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if keep_fp32(layer.type.name, layer.name, plan):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                pinned.append(layer.name)
    profile = None
    if plan.profile is not None:
        profile = builder.create_optimization_profile()
        profile.set_shape(plan.input_name, *plan.profile)
        config.add_optimization_profile(profile)
    cache_dir = None
    if plan.int8_method == "calibrator":
        from edgevit.backends.tensorrt.calibrator import make_entropy_calibrator

        cache = Path(plan.calib_cache) if plan.calib_cache else None
        if req.calib is None and (cache is None or not cache.is_file()):
            raise ConfigError(f"calibration cache {cache} not found and no calibration images given")
        calib_batch = plan.input_shape[0] if plan.profile is None else plan.profile[1][0]
        config.int8_calibrator = make_entropy_calibrator(req.calib, batch=calib_batch, cache=cache) if req.calib \
            else make_entropy_calibrator(_empty_calib(req), batch=calib_batch, cache=cache)
        if profile is not None:
            config.set_calibration_profile(profile)
        cache_dir = cache
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above)")
    facts = {
        "tensorrt": trt.__version__,
        "network_layers": int(network.num_layers),
        "fp32_pinned_layers": pinned,
        "calibration_cache": str(cache_dir) if cache_dir else None,
    }
    return bytes(serialized), facts


def _empty_calib(req: ExportRequest) -> Any:
    """A calibrator source with no images, for builds that read every scale from the cache."""
    import numpy as np

    from edgevit.quantize.data import CalibrationSet

    shape = tuple(int(d) for d in req.example.shape[1:])
    return CalibrationSet(calib=np.zeros((req.example.shape[0], *shape), np.float32),
                          holdout=np.zeros((0, *shape), np.float32), img_size=req.img_size,
                          mean=req.mean, std=req.std, source="calibration cache", distinct_images=0)


def export_tensorrt(req: ExportRequest) -> ExportResult:
    """Availability first (one line naming the fix), then ONNX -> lint -> build -> write the plan."""
    from edgevit.backends.tensorrt.runner import require

    plan = plan_build(req)  # bad options fail before anything else
    require()
    out = Path(req.output)
    try:
        with tempfile.TemporaryDirectory(prefix="edgevit-trt-") as tmp:
            onnx_path, onnx_facts = prepare_onnx(req, plan, Path(tmp))
            lint = lint_onnx(onnx_path)
            if lint["status"] == "failed":
                raise ExportError(f"the ONNX handed to TensorRT fails polygraphy lint: {lint.get('failing_nodes') or lint.get('reason')}")
            data, facts = build_engine(onnx_path, plan, req)
        out.write_bytes(data)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    onnx_name = f"{req.model_name}.onnx"
    meta: dict[str, Any] = {
        "format": "TensorRT serialized engine (plain plan; tied to this TensorRT version and GPU)",
        "build_plan": plan.as_dict(),
        **facts,
        **onnx_facts,
        "polygraphy_lint": lint,
        "trtexec": plan.trtexec(onnx_name, out.name, facts["fp32_pinned_layers"]),
        "trtexec_onnx": (
            f"edgevit export {req.model_name} --target onnx --img-size {req.img_size} "
            + ("--int8 --preset tensorrt" if plan.onnx_preset else "")
        ).strip(),
    }
    return ExportResult(artifact=out, metadata=meta)


def inspect_engine(path: Path) -> dict[str, Any]:
    """I/O names, shapes and dtypes and the layer count of an engine (needs TensorRT and a GPU)."""
    from edgevit.backends.tensorrt.runner import require

    require()
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
    if engine is None:
        raise ExportError(f"TensorRT cannot deserialize {Path(path).name}")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]

    def io(mode: Any) -> dict[str, list[int | str]]:
        return {n: [d if d >= 0 else "batch" for d in engine.get_tensor_shape(n)] for n in names
                if engine.get_tensor_mode(n) == mode}

    return {
        "inputs": io(trt.TensorIOMode.INPUT),
        "outputs": io(trt.TensorIOMode.OUTPUT),
        "dtypes": {n: engine.get_tensor_dtype(n).name for n in names},
        "layers": int(engine.num_layers),
        "optimization_profiles": int(engine.num_optimization_profiles),
        "device_memory_bytes": int(getattr(engine, "device_memory_size_v2", None) or engine.device_memory_size),
    }
