"""ExecuTorch target: deploy form -> `torch.export` -> `to_edge_transform_and_lower(XnnpackPartitioner)` -> `.pte`.

Precisions:
- fp32: the exported graph as is; XNNPACK takes conv/linear/matmul/add/... and the rest runs on
  ExecuTorch's portable kernels (in this version LayerNorm, and some copies/splits, stay outside).
- fp16: the deploy form cast to half before export, input and output half; XNNPACK runs f16 kernels.
  It works on x86 here but is slower than fp32 (no native fp16 arithmetic); it is meant for
  ARMv8.2+ cores with fp16 arithmetic. The runner casts inputs and outputs, callers see float32.
- int8: PT2E static quantization with `XNNPACKQuantizer` (symmetric int8 activations, per-channel
  int8 weights) calibrated on the same CalibrationSet as the ONNX int8 export, then lowered: XNNPACK
  fuses the Q/DQ pairs into int8 kernels.

The sidecar records how much of the graph XNNPACK took: delegated vs not delegated node counts
(executorch's `get_delegation_info`), the delegated subgraph count and the per-op breakdown of what
stayed outside.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from edgevit.errors import ExportError
from edgevit.backends.base import ExportRequest, ExportResult
from edgevit.versions import package_version

ET_INT8_NOTE = (
    "PT2E static W8A8 (XNNPACKQuantizer: symmetric int8 activations, per-channel int8 weights), "
    "calibrated on the calibration set; ops XNNPACK does not quantize stay fp32; refused when slower than fp32 "
    "(nodes whose int8 does not pay by ETDump costs stay float; -O int8_select=static: every candidate int8)"
)


def delegation_summary(graph_module: Any) -> dict[str, Any]:
    """Delegated vs not delegated node counts of a lowered graph, and what stayed outside by op."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    outside = {
        op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items()) if b.non_delegated
    }
    inside = {op: b.delegated for op, b in sorted(info.delegation_by_operator.items()) if b.delegated}
    return {
        "delegated_nodes": int(info.num_delegated_nodes),
        "non_delegated_nodes": int(info.num_non_delegated_nodes),
        "delegated_subgraphs": int(info.num_delegated_subgraphs),
        "non_delegated_ops": outside,
        "delegated_ops": inside,
    }


def load_sdk() -> None:
    """Import executorch and torchao with their import-time log lines silenced (torchao's optional CUDA
    kernels a CPU wheel lacks, torch's pytree deprecation notes): they say nothing about the export."""
    from edgevit._quiet import quiet

    with quiet("torchao", "torch.utils._pytree"):
        import executorch.exir  # noqa: F401
        import torchao.quantization.pt2e  # noqa: F401


def lower(module: Any, example: Any) -> tuple[bytes, dict[str, Any]]:
    """torch.export -> XNNPACK-delegated ExecuTorch program: (the .pte bytes, delegation summary)."""
    import warnings

    import torch

    load_sdk()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deepcopies of export's tree specs, a deprecated class
        exported = torch.export.export(module, (example,), strict=False)
        try:
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        except Exception as e:  # lowering errors are long; keep the first line in the message
            raise ExportError(f"ExecuTorch lowering failed: {str(e).strip().splitlines()[0][:300]}") from e
        summary = delegation_summary(edge.exported_program().graph_module)
        program = edge.to_executorch()
    if summary["delegated_nodes"] == 0:
        raise ExportError("XNNPACK took no node of the graph: the .pte would run entirely on portable kernels")
    return program.buffer, summary


def export_executorch(req: ExportRequest) -> ExportResult:
    """Export, optionally quantize (int8) or cast (fp16), lower to XNNPACK, write `req.output` (.pte)."""
    model = req.model.eval()
    example = req.example.contiguous().float()
    metadata: dict[str, Any] = {"precision": req.precision, "batch": int(example.shape[0])}
    t0 = time.perf_counter()
    out = Path(req.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if req.precision == "int8":
        from edgevit.backends.executorch.select import quantize_for_export

        buffer, summary, int8_meta = quantize_for_export(model, example, req)
        metadata.update(int8_meta)
    elif req.precision == "fp16":
        import copy

        example = example.half()
        buffer, summary = lower(copy.deepcopy(model).half(), example)
    elif req.precision == "fp32":
        buffer, summary = lower(model, example)
    else:
        raise ExportError(f"executorch has no precision {req.precision!r}")
    out.write_bytes(buffer)
    metadata.update(
        summary,
        input_shape=list(example.shape),
        input_dtype=str(example.dtype).removeprefix("torch."),
        executorch_version=package_version("executorch"),
        backend="XnnpackBackend",
        lower_seconds=round(time.perf_counter() - t0, 2),
    )
    return ExportResult(artifact=out, metadata=metadata)


def inspect_pte(path: Path) -> dict[str, Any]:
    """Static facts from the .pte flatbuffer: delegate calls vs portable kernel calls, operators, I/O."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(pte, "program", pte)
    plan = program.execution_plan[0]
    kinds: Counter[str] = Counter()
    kernels: Counter[str] = Counter()
    for chain in plan.chains:
        for ins in chain.instructions:
            kind = type(ins.instr_args).__name__
            kinds[kind] += 1
            if kind == "KernelCall":
                op = plan.operators[ins.instr_args.op_index]
                kernels[op.name + (f".{op.overload}" if op.overload and op.overload != "default" else "")] += 1

    def shape(i: int) -> list[int]:
        return [int(d) for d in getattr(plan.values[i].val, "sizes", [])]

    def dtype(i: int) -> str:
        return _SCALAR_TYPES.get(int(getattr(plan.values[i].val, "scalar_type", -1)), "other")

    backends = Counter(d.id for d in plan.delegates)
    return {
        # the keys every target's inspector shares (edgevit verify prints them): instructions of the
        # program, delegate calls counted per backend, portable kernels per operator
        "nodes": sum(kinds.values()),
        "op_histogram": {**{f"delegate:{b}": n for b, n in backends.items()}, **dict(kernels.most_common())},
        "method": plan.name,
        "delegate_calls": kinds.get("DelegateCall", 0),
        "kernel_calls": kinds.get("KernelCall", 0),
        "backends": dict(backends),
        "non_delegated_ops": dict(kernels.most_common()),
        # {name: shape} like the other targets' inspectors (a .pte has no tensor names: input0, ...)
        "inputs": {f"input{k}": shape(i) for k, i in enumerate(plan.inputs)},
        "outputs": {f"output{k}": shape(i) for k, i in enumerate(plan.outputs)},
        "input_dtypes": [dtype(i) for i in plan.inputs],
        "bytes": Path(path).stat().st_size,
    }


_SCALAR_TYPES = {5: "float16", 6: "float32", 15: "bfloat16", 1: "int8", 0: "uint8", 4: "int64"}
