"""The predicted latency gate on a real structural regression, for devices with no board here.

    python benchmarks/predicted_gate_demo.py [--model cas_vit_xs] [--devices arm-a17,arm-a72]

base = edgevit's export of the model (its deploy rewrites applied: BatchNorms folded into the convs, a
static q/k/v split, one classifier head); head = the same weights exported without the rewrites (the
train form through the same dynamo exporter), i.e. what a change that drops the model's rewrite would
ship. Both are priced by each device's cost model (`edgevit regress --predicted`, twice, to show the
verdict and the ratio are the same every time) and the base against an identical copy (ratio exactly 1).
No timing: nothing here depends on the machine's load.

Writes benchmarks/results/predicted_gate_demo.{json,md}.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"


def train_form_onnx(model: str, path: Path) -> Path:
    """The model's train form (no edgevit rewrite) through the dynamo exporter, as edgevit's export does."""
    import onnx
    import torch

    from edgevit._quiet import quiet
    from edgevit.models import build_reference

    m = build_reference(model).eval()
    with quiet("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", stdout=True):
        prog = torch.onnx.export(m, (torch.randn(1, 3, 224, 224),), dynamo=True, optimize=True, verbose=False,
                                 input_names=["input"], output_names=["logits"])
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(prog.model_proto, str(path))
    return path


def ops(path: Path) -> dict[str, int]:
    import onnx

    return dict(Counter(n.op_type for n in onnx.load(str(path)).graph.node).most_common())


def main() -> None:
    from edgevit.cache import get_artifact
    from edgevit.files import atomic_write_json, atomic_write_text
    from edgevit.predict.gate import compare_predicted

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cas_vit_xs")
    ap.add_argument("--devices", default="arm-a17,arm-a72")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="predicted-gate-") as tmp:
        root = Path(tmp)
        src = get_artifact(args.model, target="onnx", precision="fp32", img_size=None, batch=1).path
        for side in ("base", "same"):
            (root / side).mkdir()
            shutil.copyfile(src, root / side / f"{args.model}.onnx")
        head = train_form_onnx(args.model, root / "head" / f"{args.model}.onnx")
        rows = []
        for device in args.devices.split(","):
            runs = [compare_predicted(root / "base", root / "head", device=device) for _ in range(2)]
            same = compare_predicted(root / "base", root / "same", device=device)
            (c,), (c2,), (s,) = runs[0].cases, runs[1].cases, same.cases
            rows.append({"device": device, "predictor": runs[0].predictor, "base_ms": c.base_ms, "head_ms": c.head_ms,
                         "ratio": c.ratio, "verdict": c.verdict, "repeat_identical": runs[0].to_dict() == runs[1].to_dict(),
                         "changed_terms": c.changed_terms, "identical_copy_ratio": s.ratio, "identical_verdict": s.verdict,
                         "second_ratio": c2.ratio})
        data = {"model": args.model, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "base_ops": ops(root / "base" / f"{args.model}.onnx"), "head_ops": ops(head), "devices": rows}
    atomic_write_json(RESULTS / "predicted_gate_demo.json", data, indent=1)
    atomic_write_text(RESULTS / "predicted_gate_demo.md", markdown(data))
    print(markdown(data))


def markdown(d: dict) -> str:
    diff = {op: (d["base_ops"].get(op, 0), d["head_ops"].get(op, 0)) for op in sorted(set(d["base_ops"]) | set(d["head_ops"]))
            if d["base_ops"].get(op, 0) != d["head_ops"].get(op, 0)}
    lines = [f"## Predicted latency gate on a structural regression: {d['model']} without its deploy rewrites", "",
             ("- base: edgevit's fp32 ONNX export; head: the same weights exported in the train form (no rewrite), "
             "same exporter; predicted by each device's cost model, never timed (no board, no load dependence)"),
             "- ops that differ (base -> head): " + ", ".join(f"{op} {a} -> {b}" for op, (a, b) in diff.items()),
             f"- {d['created']}; `python benchmarks/predicted_gate_demo.py`", "",
             "| device (predictor) | base ms | head ms | ratio | verdict | same again | identical copy | largest terms (ms) |",
             "|---|---:|---:|---:|---|---|---:|---|"]
    for r in d["devices"]:
        terms = ", ".join(f"{t} {v:+.1f}" for t, v in sorted(r["changed_terms"].items(), key=lambda kv: -abs(kv[1]))[:3])
        lines.append(f"| {r['device']} ({r['predictor']}) | {r['base_ms']:.1f} | {r['head_ms']:.1f} | {r['ratio']:.3f} | "
                     f"{r['verdict']} | {'yes' if r['repeat_identical'] else 'NO'} | {r['identical_copy_ratio']:.3f} "
                     f"({r['identical_verdict']}) | {terms} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
