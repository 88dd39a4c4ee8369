"""OpenVINO runner (CPU plugin): IR artifacts (`NAME.openvino/`, or a bare `.xml` with its `.bin`) and
ONNX files, which OpenVINO reads directly (so `--runtime openvino` runs the onnx target's artifacts too).

Options (besides `threads` -> INFERENCE_NUM_THREADS):
- `hint`: latency (default) | throughput | cumulative_throughput -> PERFORMANCE_HINT.
- `num_streams`: a positive integer or `auto` -> NUM_STREAMS (the latency hint alone means one stream).
- `precision_hint`: f32 | bf16 | f16 | native -> INFERENCE_PRECISION_HINT. The default follows the
  artifact: f32 for fp32 and int8 artifacts, because the CPU plugin otherwise computes in bf16 on CPUs
  with AVX512-BF16/AMX and in f16 on ARMv8.2 (checked here: the plugin's default on this AVX512-BF16 EPYC
  is bf16), and an fp32 artifact must compare to PyTorch at fp32 tolerances; `native` (the plugin's
  own choice: half-precision arithmetic where the CPU has it) for fp16 artifacts, which is what asking
  for fp16 means. The exporter records the default it measured with in the IR (`edgevit/inference_precision`).
- `device`: OpenVINO device name, default CPU (the only one tested here).
- `perf_count`: true enables OpenVINO's per-node performance counters (`profiling_info()`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevit.backends.base import Availability, Runner, probe_module
from edgevit.errors import ConfigError, ExportError

EXTRA = "openvino"
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT", "cumulative_throughput": "CUMULATIVE_THROUGHPUT"}
PRECISION_HINTS = ("f32", "bf16", "f16", "native")
# what each artifact precision runs as unless `precision_hint` says otherwise (see the module docstring)
DEFAULT_INFERENCE_PRECISION = {"fp32": "f32", "fp16": "native", "int8": "f32"}
IR_XML = "model.xml"


def ir_xml(path: Path) -> Path:
    """The `.xml` of an IR artifact given as its directory or as the `.xml` itself."""
    path = Path(path)
    return path / IR_XML if path.is_dir() else path


def compile_config(threads: int | None, options: dict[str, Any], precision: str) -> dict[str, Any]:
    """The CPU plugin properties for these runner options (pure data; ConfigError on a bad value)."""
    hint = str(options.get("hint", "latency")).lower()
    if hint not in HINTS:
        raise ConfigError(f"openvino hint must be one of {', '.join(HINTS)}, not {options.get('hint')!r}")
    cfg: dict[str, Any] = {"PERFORMANCE_HINT": HINTS[hint]}
    if threads:
        if int(threads) < 1:
            raise ConfigError(f"openvino threads must be at least 1, not {threads!r}")
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    if "num_streams" in options:
        streams = options["num_streams"]
        if str(streams).lower() == "auto":
            cfg["NUM_STREAMS"] = "AUTO"
        elif isinstance(streams, int) and not isinstance(streams, bool) and streams >= 1:
            cfg["NUM_STREAMS"] = streams
        else:
            raise ConfigError(f"openvino num_streams must be a positive integer or auto, not {streams!r}")
    want = str(options.get("precision_hint") or DEFAULT_INFERENCE_PRECISION.get(precision, "f32")).lower()
    if want not in PRECISION_HINTS:
        raise ConfigError(
            f"openvino precision_hint must be one of {', '.join(PRECISION_HINTS)}, not {options.get('precision_hint')!r}"
        )
    if want != "native":
        cfg["INFERENCE_PRECISION_HINT"] = want
    if options.get("perf_count"):
        cfg["PERF_COUNT"] = True
    return cfg


def _rt_value(model: Any, *path: str) -> str | None:
    """A string from the model's rt_info, or None when absent."""
    keys = list(path)
    if not model.has_rt_info(keys):
        return None
    return str(model.get_rt_info(keys).astype(str))


def artifact_precision(model: Any) -> tuple[str, str | None]:
    """(precision, recorded inference precision) from edgevit's rt_info: IR section `edgevit`, or the
    `framework` section OpenVINO fills from an edgevit ONNX file's metadata_props; fp32 when unknown."""
    precision = _rt_value(model, "edgevit", "precision") or _rt_value(model, "framework", "precision") or "fp32"
    return precision, _rt_value(model, "edgevit", "inference_precision")


class OpenVinoRunner(Runner):
    """Compiles an IR or ONNX file for one device and runs it through one infer request."""

    key = "openvino"
    option_keys = ("hint", "num_streams", "precision_hint", "device", "perf_count")

    def __init__(self, *, threads: int | None = None, **options: object) -> None:
        super().__init__(threads=threads, **options)
        unknown = sorted(set(options) - set(self.option_keys))
        if unknown:
            raise ConfigError(f"unknown openvino option(s) {', '.join(unknown)}; it reads: {', '.join(self.option_keys)}")
        self.compiled: Any = None
        self.request: Any = None
        self.input_shape: list[int] = []
        self.precision = "fp32"
        self.config: dict[str, Any] = {}

    def load(self, path: Path) -> None:
        import openvino as ov

        path = Path(path)
        xml = ir_xml(path)
        if xml.suffix.lower() not in (".xml", ".onnx"):
            raise ConfigError(f"openvino runs an IR (NAME.openvino/ or .xml) or an .onnx file, not {path.name}")
        if not xml.is_file():
            raise ConfigError(f"OpenVINO artifact not found: {xml}")
        if xml.suffix.lower() == ".xml" and not xml.with_suffix(".bin").is_file():
            raise ConfigError(f"OpenVINO IR {xml.name} needs its weights {xml.with_suffix('.bin').name} beside it")
        try:
            model = ov.Core().read_model(str(xml))
        except RuntimeError as exc:
            raise ExportError(f"OpenVINO cannot read {path.name}: {_first_line(exc)}") from None
        self.load_model(model)

    def load_model(self, model: Any) -> None:
        """Compile an in-memory `openvino.Model` (the exporter measures candidates with this)."""
        import openvino as ov

        precision, recorded = artifact_precision(model)
        self.precision = precision
        options = dict(self.options)
        if recorded and "precision_hint" not in options:
            options["precision_hint"] = recorded
        self.config = compile_config(self.threads, options, precision)
        device = str(self.options.get("device", "CPU"))
        try:
            self.compiled = ov.Core().compile_model(model, device, self.config)
        except RuntimeError as exc:
            raise ExportError(f"OpenVINO cannot compile the model for {device}: {_first_line(exc)}") from None
        self.request = self.compiled.create_infer_request()
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = [d.get_length() if d.is_static else -1 for d in shape]

    def infer(self, x: np.ndarray) -> np.ndarray:
        """One synchronous inference; the input is shared, not copied (ONNX Runtime's `run` does not copy a
        contiguous array either): the call returns only when OpenVINO is done with it."""
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)}, share_inputs=True)
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def profiling_info(self) -> list[Any]:
        """Per-node counters of the last inference (needs `perf_count=True`)."""
        return list(self.request.get_profiling_info())

    def inference_precision(self) -> str:
        """The precision the compiled model really computes in (the plugin's resolved property)."""
        prop = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return str(prop.get_type_name()) if hasattr(prop, "get_type_name") else str(prop)

    def close(self) -> None:
        self.request = None
        self.compiled = None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Exception from")]
    return lines[0] if lines else type(exc).__name__


def probe() -> Availability:
    return probe_module("openvino", EXTRA)


def describe() -> dict[str, str]:
    """What `edgevit doctor` shows besides the version: OpenVINO's devices and what each can compute."""
    import openvino as ov

    core = ov.Core()
    out = {}
    for dev in core.available_devices:
        name = str(core.get_property(dev, "FULL_DEVICE_NAME"))
        caps = core.get_property(dev, "OPTIMIZATION_CAPABILITIES")
        out[dev] = f"{name} ({', '.join(caps)})" if caps else name
    return {"devices": "; ".join(f"{k}: {v}" for k, v in out.items()) or "none"}
