#!/usr/bin/env python3
"""Export every model x precision of a suite for one target into a folder (verified, with sidecars).

The first job of .github/workflows/device-fleet.yml: boards that run `edgevit bench` as self-hosted
runners need no torch, so the artifacts are exported on a hosted runner and handed to them. A
precision the target does not offer (int8 for ncnn) is skipped and said so. Each artifact is named
`<model>_<precision><suffix>` and its sidecar records the model, so a board benching the files gets
the same case ids as benching the model names (its baseline matches either way).

    python benchmarks/export_suite.py benchmarks/suites/paper.yaml --target onnx -o artifacts/onnx
    python benchmarks/export_suite.py benchmarks/suites/paper.yaml --target ncnn -o artifacts/ncnn --dry-run
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def jobs(suite_path: Path, target: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(model, precision) pairs to export for `target`, and the skipped ones with why."""
    from edgevit.bench.suites import load_suite
    from edgevit.errors import ConfigError
    from edgevit.backends import get_backend

    tgt = get_backend(target)
    todo: list[tuple[str, str]] = []
    skipped: list[str] = []
    for group in load_suite(suite_path).groups:
        for model in group.models:
            for precision in group.precisions or [tgt.default_precision]:
                try:
                    tgt.check_precision(precision)
                except ConfigError as exc:
                    skipped.append(f"{model} {precision}: {exc}")
                    continue
                if (model, precision) not in todo:
                    todo.append((model, precision))
    return todo, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--target", required=True, help="export target (edgevit targets)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder for the artifacts")
    ap.add_argument("--dry-run", action="store_true", help="list what would be exported")
    args = ap.parse_args(argv)
    from edgevit.errors import EdgeVitError

    try:
        todo, skipped = jobs(args.suite, args.target)
    except EdgeVitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in skipped:
        print(f"skipped {line}")
    if args.dry_run:
        for model, precision in todo:
            print(f"would export {model} {precision} ({args.target})")
        return 0
    from edgevit.export import export

    args.output.mkdir(parents=True, exist_ok=True)
    for model, precision in todo:
        try:
            report = export(model, target=args.target, precision=precision, output=f"{args.output}/")
        except EdgeVitError as exc:
            print(f"error: {model} {precision}: {exc}", file=sys.stderr)
            return 1
        print(f"exported {report.artifact}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
