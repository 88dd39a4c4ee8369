"""TorchScript-mobile target: trace the deploy form, optimise for mobile where XNNPACK exists, save for
the lite interpreter (`.ptl`).

int8 here means *dynamic* int8: `torch.ao.quantization.quantize_dynamic` on every `nn.Linear` (weights
int8 per-tensor symmetric, activations quantised per batch at run time), packed for the `qnnpack`
engine that ARM phones run (x86/fbgemm only where this torch has no qnnpack; the sidecar says which).
Convolutions stay fp32, so the sidecar also records what share of the weights became int8.

Measured here with torch 2.13 (CPU wheel): the torch build may lack XNNPACK, and then `optimize_for_mobile`
raises; we freeze instead and say so. A failed `_save_for_lite_interpreter` can leave a full-size,
corrupt file behind, so every failure removes the partial output before raising.
"""
from __future__ import annotations

import contextlib
import copy
import json
import platform
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgevit.errors import ExportError, UnavailableError
from edgevit.backends.base import ExportRequest, ExportResult

EXTRA_FILE = "edgevit.json"  # stored inside the .ptl zip (`_extra_files`), read back by the runner
QENGINE_OPTION = "qengine"


def xnnpack_available() -> bool:
    """True when this torch build has XNNPACK, which `optimize_for_mobile` needs."""
    import torch

    try:
        return bool(torch._C._is_xnnpack_enabled())
    except AttributeError:  # very old or very trimmed builds
        return False


def pick_qengine(requested: str | None = None) -> str:
    """The quantized engine to pack int8 weights for: qnnpack (ARM's engine) unless this torch lacks it."""
    import torch

    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if requested:
        if requested not in engines:
            raise UnavailableError(
                f"quantized engine {requested!r} is not in this torch build (it has: {', '.join(engines) or 'none'})"
            )
        return requested
    for engine in ("qnnpack", "x86", "fbgemm"):
        if engine in engines:
            return engine
    raise UnavailableError("this torch build has no quantized engine (qnnpack/x86/fbgemm): int8 needs one")


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    """Set torch's process-wide quantized engine for a block and restore it afterwards."""
    import torch

    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def quantize_linear_dynamic(model: Any, engine: str) -> tuple[Any, dict[str, Any]]:
    """Dynamic int8 on every nn.Linear for `engine`; returns the model and what got quantized."""
    import torch
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ExportError("int8 on torchscript quantizes nn.Linear layers and this model has none; use fp32")
    total = sum(p.numel() for p in model.parameters())
    linear_params = sum(m.weight.numel() for m in linears)
    with quantized_engine(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice, once per call
        qmodel = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    facts = {
        "int8_scheme": "dynamic: nn.Linear weights int8 per-tensor symmetric, activations quantized per batch",
        "qengine": engine,
        "quantized_linear_layers": len(linears),
        "int8_weight_share": round(linear_params / max(total, 1), 4),
        "fp32_layers": "convolutions, norms, attention matmuls and everything that is not nn.Linear",
    }
    return qmodel, facts


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def export_torchscript(req: ExportRequest) -> ExportResult:
    """Trace -> (int8) -> optimize_for_mobile or freeze -> `_save_for_lite_interpreter(req.output)`."""
    import torch

    out = Path(req.output)
    meta: dict[str, Any] = {"format": "TorchScript lite interpreter (.ptl)", "traced_batch": int(req.example.shape[0])}
    model = req.model.eval()
    try:
        if req.precision == "int8":
            engine = pick_qengine(req.options.get(QENGINE_OPTION))
            model, qfacts = quantize_linear_dynamic(model, engine)
            meta.update(qfacts)
        elif req.precision != "fp32":
            raise ExportError(f"torchscript has no {req.precision}; it offers fp32, int8")
        engine_ctx = quantized_engine(meta["qengine"]) if "qengine" in meta else contextlib.nullcontext()
        with engine_ctx, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            try:
                traced = torch.jit.trace(model, req.example, check_trace=False)
            except Exception as exc:
                raise ExportError(f"torch.jit.trace failed: {_first_line(exc)}") from exc
            if xnnpack_available():
                from torch.utils.mobile_optimizer import optimize_for_mobile

                mobile = optimize_for_mobile(traced)
                meta["mobile_optimization"] = "optimize_for_mobile (XNNPACK)"
            else:
                mobile = torch.jit.freeze(traced.eval())
                meta["mobile_optimization"] = (
                    "skipped: this torch build has no XNNPACK, which optimize_for_mobile needs; "
                    "the module is frozen only (re-export on a torch with XNNPACK for prepacked ops)"
                )
            extra = {
                "model": req.model_name,
                "precision": req.precision,
                "img_size": req.img_size,
                "batch": int(req.example.shape[0]),
                "input": "float32 NCHW, RGB, values (x/255 - mean) / std",
                "mean": list(req.mean),
                "std": list(req.std),
                "qengine": meta.get("qengine"),
            }
            try:
                mobile._save_for_lite_interpreter(str(out), _extra_files={EXTRA_FILE: json.dumps(extra)})
            except Exception as exc:
                raise ExportError(
                    f"saving for the lite interpreter failed: {_first_line(exc)} "
                    "(a Python-only op such as an autograd.Function survived deploy(); rewrite it to plain ops)"
                ) from exc
        from torch.jit.mobile import _get_model_bytecode_version

        meta["bytecode_version"] = int(_get_model_bytecode_version(str(out)))
        meta["operators"] = sorted(inspect_ptl(out)["operators"])
    except BaseException:
        out.unlink(missing_ok=True)  # never leave a partial or corrupt .ptl behind
        raise
    meta["host"] = platform.machine()
    return ExportResult(artifact=out, metadata=meta)


def read_extra(path: Path) -> dict[str, Any]:
    """The edgevit JSON stored inside a .ptl (empty when absent)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if name.endswith(f"/extra/{EXTRA_FILE}"):
                    return json.loads(zf.read(name).decode())
    except (zipfile.BadZipFile, OSError, ValueError):
        return {}
    return {}


def inspect_ptl(path: Path) -> dict[str, Any]:
    """Static facts of a .ptl: bytecode version, root operators (for a selective mobile build), metadata."""
    from torch.jit.mobile import _export_operator_list, _get_model_bytecode_version, _load_for_lite_interpreter

    module = _load_for_lite_interpreter(str(path))
    ops = sorted(_export_operator_list(module))
    return {
        "bytecode_version": int(_get_model_bytecode_version(str(path))),
        "operators": ops,
        "operator_count": len(ops),
        "metadata": read_extra(Path(path)),
    }
