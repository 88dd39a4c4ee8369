"""ncnn target: deploy form -> TorchScript trace -> pnnx -> ncnn `.param` + `.bin`.

The artifact is a directory `NAME.ncnn/` holding `model.param`, `model.bin` and `model.json` (input
and output blob names, input shape, storage precision), so that one path names the whole model and
the export pipeline's write-to-temp-then-rename works as it does for any single artifact.

Precisions:
- fp32: weights stored fp32; the runner turns ncnn's fp16/bf16 storage and arithmetic off, so the
  result is comparable to PyTorch at fp32 tolerances on every CPU.
- fp16: weights stored fp16 in `model.bin` (pnnx `fp16=1`); the runner leaves ncnn's defaults on,
  so fp16 storage (and fp16 arithmetic on ARMv8.2+) is used where the CPU has it.
- int8: ncnn's own int8 format (what ncnn2table + ncnn2int8 write; neither tool is in a PyPI wheel
  or in Debian), written by `edgevit.quantize.ncnn_int8` from the fp32 pair and the calibration set:
  Convolution/ConvolutionDepthWise/InnerProduct with int8 weights, per-channel weight scales and a
  calibrated activation scale; constant-weight Gemm with int8 weights (one scale) and ncnn's dynamic
  per-row activation quantization; everything else fp32. See docs/ncnn_executorch.md.

pnnx converts a traced graph; what it cannot map to an ncnn layer it leaves in the `.param` under its
own op name (`Tensor.reshape`, `torch.unbind`, ...) and still exits 0. Rank-5 reshapes such as
`qkv.reshape(B, N, 3, heads, dim).permute(2, 0, 3, 1, 4)` are the common case in ViTs: the deploy
form must split q/k/v first. The exporter reads the `.param` back and fails loudly on such layers.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgevit.errors import ExportError, UnavailableError
from edgevit.exporters.targets import ExportRequest, ExportResult, Target, register_target

PARAM = "model.param"
BIN = "model.bin"
MANIFEST = "model.json"
PARAM_MAGIC = "7767517"

NCNN_INT8_NOTE = (
    "ncnn's int8 format written by edgevit (ncnn2table/ncnn2int8 are in no wheel): Convolution, depthwise "
    "and InnerProduct W8A8 (per-channel weights, calibrated activation scale), Linear-Gemm int8 weights "
    "with dynamic per-row activations; attention MatMul, LayerNorm, GELU, Softmax stay fp32"
)


def param_path(path: Path) -> Path:
    """The `.param` file of an ncnn artifact given as its directory or as the `.param` itself."""
    path = Path(path)
    if path.is_dir():
        return path / PARAM
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """`model.json` of an artifact directory; {} for a bare `.param` (ncnn defaults then apply)."""
    p = Path(path)
    manifest = (p if p.is_dir() else p.parent) / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())
    return {}


def parse_param(text: str) -> list[tuple[str, str, list[str], list[str]]]:
    """Layers of an ncnn `.param` text as (type, name, input blobs, output blobs)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != PARAM_MAGIC:
        raise ExportError(f"not an ncnn .param file (magic {lines[0].strip() if lines else ''!r})")
    layers = []
    for ln in lines[2:]:
        parts = ln.split()
        kind, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
        blobs = parts[4 : 4 + n_in + n_out]
        layers.append((kind, name, blobs[:n_in], blobs[n_in:]))
    return layers


def layer_histogram(path: Path) -> dict[str, int]:
    """How many layers of each ncnn type the artifact holds, most frequent first."""
    layers = parse_param(param_path(path).read_text())
    return dict(Counter(kind for kind, *_ in layers).most_common())


def _unconverted(layers: list[tuple[str, str, list[str], list[str]]]) -> list[str]:
    """Layers pnnx left in its own op names (`Tensor.reshape`, `F.xxx`, `torch.xxx`): ncnn cannot load them."""
    return [f"{kind} {name}" for kind, name, *_ in layers if "." in kind or "::" in kind]


def inspect_ncnn(path: Path) -> dict[str, Any]:
    """Static facts: layer count and histogram, blob names, input shape, storage precision, sizes."""
    p = param_path(path)
    layers = parse_param(p.read_text())
    manifest = read_manifest(path)
    bin_file = p.with_suffix(".bin")
    hist = dict(Counter(kind for kind, *_ in layers).most_common())
    return {
        "nodes": len(layers),  # the keys every target's inspector shares (edgevit verify prints them)
        "op_histogram": hist,
        "layers": len(layers),
        "layer_histogram": hist,
        # {blob: shape} like the other targets' inspectors; ncnn has no batch axis, shown as 1
        "inputs": {name: [1, *(manifest.get("input_shape") or [])] for kind, name, *_ in layers if kind == "Input"},
        "outputs": {name: None for name in manifest.get("outputs") or _terminal_outputs(layers)},
        "precision": manifest.get("precision", "unknown"),
        "int8_layers": sum(1 for line in p.read_text().splitlines()[2:] if _is_int8_line(line)),
        "param_bytes": p.stat().st_size,
        "bin_bytes": bin_file.stat().st_size if bin_file.is_file() else None,
    }


def _is_int8_line(line: str) -> bool:
    """A `.param` line of a layer ncnn runs in int8: int8_scale_term (8=) or Gemm's quantize_term (18=) set."""
    parts = line.split()
    key = {"Convolution": "8", "ConvolutionDepthWise": "8", "InnerProduct": "8", "Gemm": "18"}.get(parts[0] if parts else "")
    return key is not None and any(t.startswith(key + "=") and t != f"{key}=0" for t in parts[4:])


def _terminal_outputs(layers: list[tuple[str, str, list[str], list[str]]]) -> list[str]:
    """Blobs produced but never consumed: the graph outputs (pnnx names them out0, out1, ...)."""
    consumed = {b for _, _, ins, _ in layers for b in ins}
    produced = [b for _, _, _, outs in layers for b in outs]
    return [b for b in produced if b not in consumed]


def run_pnnx(torchscript: Path, shape: tuple[int, ...], workdir: Path, *, fp16: bool) -> tuple[Path, Path, str]:
    """Run the pnnx converter on a saved TorchScript file; return (.param, .bin, pnnx log).

    Every pnnx by-product (pnnx.param/bin/py/onnx, ncnn.py) is directed into `workdir`.
    """
    try:
        import pnnx
    except ImportError as e:  # pragma: no cover - guarded by Target.requires
        raise UnavailableError("pnnx is not installed: pip install 'edgevit[ncnn]'") from e
    stem = workdir / "model"
    cmd = [
        pnnx.EXEC_PATH,
        str(torchscript),
        "inputshape=[" + ",".join(str(d) for d in shape) + "]f32",
        "device=cpu",
        f"fp16={1 if fp16 else 0}",
        f"pnnxparam={stem}.pnnx.param",
        f"pnnxbin={stem}.pnnx.bin",
        f"pnnxpy={workdir / 'model_pnnx.py'}",
        f"pnnxonnx={stem}.pnnx.onnx",
        f"ncnnparam={stem}.ncnn.param",
        f"ncnnbin={stem}.ncnn.bin",
        f"ncnnpy={workdir / 'model_ncnn.py'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=False)
    log = proc.stdout + proc.stderr
    param, binf = Path(f"{stem}.ncnn.param"), Path(f"{stem}.ncnn.bin")
    if proc.returncode != 0 or not param.is_file() or not binf.is_file():
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise ExportError(f"pnnx failed (exit {proc.returncode}):\n{tail}")
    return param, binf, log


def export_ncnn(req: ExportRequest) -> ExportResult:
    """Trace the deploy form at batch 1, convert with pnnx, write `req.output/` = {param, bin, json}."""
    import torch

    example = req.example[:1].contiguous().float()  # ncnn has no batch axis: the runner loops over rows
    model = req.model.eval()
    with tempfile.TemporaryDirectory(prefix="edgevit-pnnx-") as tmp:
        work = Path(tmp)
        ts_path = work / "model.pt"
        with torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
        traced.save(str(ts_path))
        param, binf, log = run_pnnx(ts_path, tuple(example.shape), work, fp16=req.precision == "fp16")
        layers = parse_param(param.read_text())
        bad = _unconverted(layers)
        if bad:
            ignored = [ln.strip() for ln in log.splitlines() if ln.startswith("ignore ") or "rank" in ln]
            raise ExportError(
                f"pnnx left {len(bad)} layer(s) ncnn cannot run: {', '.join(bad[:6])}"
                + (f" ({'; '.join(dict.fromkeys(ignored))[:400]})" if ignored else "")
                + ". Rank-5 reshapes (qkv.reshape(B, N, 3, heads, dim)) must be split into q/k/v first"
            )
        inputs = [name for kind, name, *_ in layers if kind == "Input"]
        outputs = _terminal_outputs(layers)
        if len(inputs) != 1 or len(outputs) != 1:
            raise ExportError(f"expected one input and one output blob, got {inputs} -> {outputs}")
        int8 = _quantize(req, param, binf, inputs[0], outputs[0]) if req.precision == "int8" else None
        out = Path(req.output)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.mkdir(parents=True)
        shutil.copyfile(param, out / PARAM)
        shutil.copyfile(binf, out / BIN)
    manifest = {
        "format": "ncnn",
        "precision": req.precision,
        "inputs": inputs,
        "outputs": outputs,
        "input_shape": list(example.shape[1:]),  # (C, H, W): ncnn Mats carry no batch axis
        "batch_axis": "none; the edgevit runner loops over rows",
        "mean": list(req.mean),
        "std": list(req.std),
    }
    if int8 is not None:  # what the runner and a reader need: which layers run int8, float layers in fp32
        manifest["int8_layers"] = int8.int8_layers
        manifest["float_layers"] = "fp32"
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    metadata = {
        **manifest,
        "pnnx_version": _version("pnnx"),
        "ncnn_version": _version("ncnn"),
        "layers": len(layers),
        "layer_histogram": dict(Counter(kind for kind, *_ in layers).most_common()),
        "flops": _pnnx_figure(log, "FLOPS"),
        "files": [PARAM, BIN, MANIFEST],
    }
    if int8 is not None:
        from edgevit.quantize.ncnn_int8 import summary_line

        metadata["int8"] = int8.as_dict()
        metadata["int8_summary"] = summary_line(int8)
    return ExportResult(artifact=out, metadata=metadata)


def _quantize(req: ExportRequest, param: Path, binf: Path, input_name: str, output_name: str) -> Any:
    """int8: rewrite the fp32 pair in place from the request's calibration set (edgevit.quantize.ncnn_int8)."""
    from edgevit.quantize.ncnn_int8 import quantize_in_place

    if req.calib is None:
        raise ExportError("ncnn int8 needs a calibration set")
    return quantize_in_place(param, binf, req.calib.calib, req.calib.holdout, input_name=input_name,
                             output_name=output_name, method=req.calib_method, options=req.options)


def _pnnx_figure(log: str, key: str) -> str | None:
    m = re.search(rf"^{key} = (\S+)", log, flags=re.M)
    return m.group(1) if m else None


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


NCNN = register_target(
    Target(
        key="ncnn",
        title="ncnn",
        suffix=".ncnn",
        precisions=("fp32", "fp16", "int8"),
        int8=NCNN_INT8_NOTE,
        runtime="ncnn",
        extra="ncnn",
        exporter=export_ncnn,
        requires=("pnnx", "ncnn"),
        dynamic_batch=False,
        notes=(
            "directory NAME.ncnn/ with model.param, model.bin, model.json; pnnx conversion of the "
            "deploy form (q/k/v split, no rank-5 reshapes); no batch axis, the runner loops over rows; "
            "fp16 = fp16 weight storage, fp16 arithmetic only where the CPU has it"
        ),
        inspect=inspect_ncnn,
    )
)
