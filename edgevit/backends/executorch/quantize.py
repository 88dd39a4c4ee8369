"""PT2E static int8 for ExecuTorch/XNNPACK: `XNNPACKQuantizer` (symmetric int8 activations, per-channel
int8 weights), observers calibrated on the same calibration images as the ONNX int8 export.

`torch.ao.quantization` PT2E is deprecated in torch 2.13; the maintained copy lives in torchao
(`torchao.quantization.pt2e`), which executorch pulls in. XNNPACK then fuses the Q/DQ pairs around
conv/linear/add/... into int8 kernels when the graph is lowered; ops it does not quantize
(LayerNorm, softmax, GELU in this version) stay fp32 between dequantize and quantize nodes.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from edgevit import progress
from edgevit.errors import CalibrationError


def calibration_batches(calib: Any, batch: int = 1, limit: int | None = None) -> Iterator["Any"]:
    """Yield float32 NCHW torch tensors of `batch` rows from a CalibrationSet (or any iterable of arrays).

    Accepts what the calibration module offers: `.batches(n)`, an `.images` / `.arrays` array, or an
    iterable of (N)CHW arrays or tensors. Static-shape programs need exactly `batch` rows per call.
    """
    import torch

    if calib is None:
        raise CalibrationError("int8 needs calibration images (a CalibrationSet); none were given")
    if hasattr(calib, "batches"):
        source: Iterable[Any] = calib.batches(batch)
    elif hasattr(calib, "images") and not callable(calib.images):
        source = [calib.images]
    elif hasattr(calib, "arrays") and not callable(calib.arrays):
        source = [calib.arrays]
    else:
        source = calib
    rows: list[np.ndarray] = []
    for item in source:
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        arr = arr.astype(np.float32, copy=False)
        rows.extend(arr if arr.ndim == 4 else arr[None])
    if limit is not None:
        rows = rows[:limit]
    if len(rows) < batch:
        raise CalibrationError(f"calibration set has {len(rows)} image(s), fewer than batch {batch}")
    for i in range(0, len(rows) - batch + 1, batch):
        yield torch.from_numpy(np.stack(rows[i : i + batch]))


# aten op -> the node kind XNNPACKQuantizer quantizes it as (and ETDump's anchor class, see costs.py)
OP_KINDS = {"aten.conv2d.default": "conv", "aten.linear.default": "linear", "aten.add.Tensor": "add",
            "aten.mul.Tensor": "mul", "aten.cat.default": "cat", "aten.adaptive_avg_pool2d.default": "pool"}


def capture(model: Any, example: Any) -> Any:
    """The graph module PT2E quantizes (torch.export, non-strict); its node names name the candidates."""
    import torch

    return torch.export.export(model.eval(), (example,), strict=False).module()


def _quantizer(float_nodes: frozenset[str] = frozenset(), per_channel: bool = True) -> Any:
    from edgevit.backends.executorch.export import load_sdk

    load_sdk()
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    if float_nodes:
        quantizer.set_filter_function(lambda node: node.name not in float_nodes)
    return quantizer


def node_kind(node: Any) -> str | None:
    """conv / conv depthwise / linear / add / mul / cat / pool, or None for an op XNNPACK does not quantize."""
    kind = OP_KINDS.get(str(node.target))
    if kind == "conv":
        w = node.args[1].meta.get("val") if len(node.args) > 1 and hasattr(node.args[1], "meta") else None
        groups = node.args[6] if len(node.args) > 6 else 1
        if w is not None and groups > 1 and int(w.shape[1]) == 1:
            return "conv depthwise"
    return kind


def graph_order(captured: Any) -> dict[str, list[str]]:
    """Op class -> every node of that class in graph order (quantized or not): ETDump anchors by order."""
    order: dict[str, list[str]] = {}
    for node in captured.graph.nodes:
        cls = OP_KINDS.get(str(node.target)) if node.op == "call_function" else None
        if cls:
            order.setdefault(cls, []).append(node.name)
    return order


def candidates(captured: Any) -> list[tuple[str, str, str]]:
    """(node, kind, module) of every node XNNPACKQuantizer annotates (what can run int8)."""
    prepared = _prepare(captured, frozenset(), per_channel=True)
    out = []
    for node in prepared.graph.nodes:
        if node.op != "call_function" or "quantization_annotation" not in node.meta:
            continue
        kind = node_kind(node)
        if kind is not None:
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            out.append((node.name, kind, stack[-1][0] if stack and stack[-1][0] else node.name))
    return out


def _prepare(captured: Any, float_nodes: frozenset[str], per_channel: bool) -> Any:
    """A copy of `captured` with XNNPACK observers on every candidate but `float_nodes`."""
    import copy

    from edgevit.backends.executorch.export import load_sdk

    load_sdk()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    with warnings.catch_warnings():  # deepcopy of export's tree specs warns about a deprecated class
        warnings.simplefilter("ignore", FutureWarning)
        return prepare_pt2e(copy.deepcopy(captured), _quantizer(float_nodes, per_channel))


def _observer_groups(prepared: Any) -> dict[str, frozenset[str]]:
    """Observer module name -> the tensors (their producers' node names) it watches; XNNPACK shares one
    observer across a group (a cat's inputs and output)."""
    groups: dict[str, set[str]] = {}
    for n in prepared.graph.nodes:
        if n.op == "call_module" and "activation_post_process" in str(n.target) and n.args:
            groups.setdefault(str(n.target), set()).add(str(getattr(n.args[0], "name", "")))
    return {k: frozenset(v) for k, v in groups.items()}


def _calibrate(prepared: Any, example: Any, calib: Any) -> int:
    """Run the calibration images through the observers; returns how many were seen."""
    import torch

    seen = 0
    total = len(getattr(calib, "calib", ())) or None
    with torch.no_grad(), progress.step(f"calibrate on {total or 'the'} images", total=total) as advance:
        for xb in calibration_batches(calib, batch=int(example.shape[0])):
            prepared(xb)
            seen += int(xb.shape[0])
            advance(int(xb.shape[0]))
    if seen == 0:
        raise CalibrationError("no calibration batch reached the observers")
    return seen


class Calibration:
    """One calibration of every candidate, whose observer statistics every variant reuses.

    Observers watch float activations, and keeping some nodes float changes no float activation, so
    an observer watching the same tensors in a variant as in the all-int8 calibration has the same
    statistics: the variant gets a copy. Only observers whose group changed (part of a shared group
    went float) are calibrated again, with the copies set aside. A variant's scales are those its own
    calibration gives, up to float rounding in the histograms (measured on fcaformer_l1: one scale
    of 496 off by 0.06 %).
    """

    def __init__(self, captured: Any, example: Any, calib: Any, per_channel: bool = True) -> None:
        self.captured, self.example, self.calib, self.per_channel = captured, example, calib, per_channel
        prepared = _prepare(captured, frozenset(), per_channel)
        self.images = _calibrate(prepared, example, calib)
        self._stats = {group: getattr(prepared, name) for name, group in _observer_groups(prepared).items()}
        self.recalibrated = 0  # variants that needed a calibration pass for a changed group

    def variant(self, float_nodes: frozenset[str] = frozenset()) -> Any:
        """The Q/DQ graph module with `float_nodes` kept float."""
        import copy

        import torch
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        prepared = _prepare(self.captured, frozenset(float_nodes), self.per_channel)
        copies = {}
        for name, group in _observer_groups(prepared).items():
            source = self._stats.get(group)
            if source is not None and type(source) is type(getattr(prepared, name)):
                copies[name] = copy.deepcopy(source)
        if len(copies) < len(_observer_groups(prepared)):
            self.recalibrated += 1
            for name in copies:  # set aside: the pass updates only the changed groups' observers
                setattr(prepared, name, torch.nn.Identity())
            _calibrate(prepared, self.example, self.calib)
        for name, observer in copies.items():
            setattr(prepared, name, observer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return convert_pt2e(prepared)


def quantize_variant(captured: Any, example: Any, calib: Any, float_nodes: frozenset[str] = frozenset(),
                     per_channel: bool = True) -> tuple[Any, int]:
    """A copy of `captured` with observers on every candidate but `float_nodes`, calibrated on its own,
    converted to Q/DQ. Returns (converted graph module, calibration images used)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared = _prepare(captured, frozenset(float_nodes), per_channel)
    seen = _calibrate(prepared, example, calib)
    return convert_pt2e(prepared), seen


def quantize_xnnpack(model: Any, example: Any, calib: Any, *, per_channel: bool = True) -> tuple[Any, int]:
    """Every candidate int8: export, insert XNNPACK observers, calibrate, convert to Q/DQ.

    Returns (converted graph module, number of calibration images used).
    """
    return quantize_variant(capture(model, example), example, calib, per_channel=per_channel)
