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
  or in Debian), written by `edgevit.backends.ncnn.quantize` from the fp32 pair and the calibration set:
  Convolution/ConvolutionDepthWise/InnerProduct with int8 weights, per-channel weight scales and a
  calibrated activation scale; constant-weight Gemm with int8 weights (one scale) and ncnn's dynamic
  per-row activation quantization; everything else fp32. See docs/ncnn_executorch.md.

pnnx converts a traced graph; what it cannot map to an ncnn layer it leaves in the `.param` under its
own op name (`Tensor.reshape`, `torch.unbind`, ...) and still exits 0. Rank-5 reshapes such as
`qkv.reshape(B, N, 3, heads, dim).permute(2, 0, 3, 1, 4)` are the common case in ViTs: the deploy
form must split q/k/v first. The exporter reads the `.param` back and fails loudly on such layers.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgevit.backends.base import ExportRequest, ExportResult
from edgevit.backends.ncnn.param import BIN, MANIFEST, PARAM, read_layers, terminal_outputs, unconverted
from edgevit.errors import ExportError, UnavailableError
from edgevit.files import atomic_write_json
from edgevit.versions import package_version


NCNN_INT8_NOTE = (
    "ncnn's int8 format written by edgevit (ncnn2table/ncnn2int8 are in no wheel): Convolution, depthwise "
    "and InnerProduct W8A8 (per-channel weights, calibrated activation scale), Linear-Gemm int8 weights "
    "with dynamic per-row activations; attention MatMul, LayerNorm, GELU, Softmax stay fp32"
)


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
        layers = read_layers(param)
        bad = unconverted(layers)
        if bad:
            ignored = [ln.strip() for ln in log.splitlines() if ln.startswith("ignore ") or "rank" in ln]
            raise ExportError(
                f"pnnx left {len(bad)} layer(s) ncnn cannot run: {', '.join(bad[:6])}"
                + (f" ({'; '.join(dict.fromkeys(ignored))[:400]})" if ignored else "")
                + ". Rank-5 reshapes (qkv.reshape(B, N, 3, heads, dim)) must be split into q/k/v first"
            )
        inputs = [layer.name for layer in layers if layer.kind == "Input"]
        outputs = terminal_outputs(layers)
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
        "model": req.model_name,
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
    atomic_write_json(out / MANIFEST, manifest)
    metadata = {
        **manifest,
        "pnnx_version": package_version("pnnx"),
        "ncnn_version": package_version("ncnn"),
        "layers": len(layers),
        "layer_histogram": dict(Counter(layer.kind for layer in layers).most_common()),
        "flops": _pnnx_figure(log, "FLOPS"),
        "files": [PARAM, BIN, MANIFEST],
    }
    if int8 is not None:
        from edgevit.backends.ncnn.quantize import summary_line

        metadata["int8"] = int8.as_dict()
        metadata["int8_summary"] = summary_line(int8)
    return ExportResult(artifact=out, metadata=metadata)


def _quantize(req: ExportRequest, param: Path, binf: Path, input_name: str, output_name: str) -> Any:
    """int8: rewrite the fp32 pair in place from the request's calibration set (edgevit.backends.ncnn.quantize)."""
    from edgevit.backends.ncnn.quantize import quantize_in_place

    if req.calib is None:
        raise ExportError("ncnn int8 needs a calibration set")
    return quantize_in_place(param, binf, req.calib.calib, req.calib.holdout, input_name=input_name,
                             output_name=output_name, method=req.calib_method, options=req.options,
                             force=req.int8_force)


def _pnnx_figure(log: str, key: str) -> str | None:
    m = re.search(rf"^{key} = (\S+)", log, flags=re.M)
    return m.group(1) if m else None
