"""`edgevit export MODEL --target T [--fp16|--int8]`: parse, call `edgevit.export.export`, print the report."""
from __future__ import annotations

import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console, parse_key_values
from edgevit.errors import ConfigError


def _target_choices() -> type[Enum]:
    """--target choices straight from the targets table."""
    from edgevit.exporters.targets import targets

    return Enum("TargetChoice", {k: k for k in sorted(targets())}, type=str)  # type: ignore[return-value]


TargetChoice = _target_choices()


class CalibMethod(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


@app.command("export")
def export_cmd(
    model: Annotated[str, typer.Argument(help="Model name or alias (see `edgevit models`).")],
    target: Annotated[TargetChoice, typer.Option("--target", "-t", help="Export target.")] = "onnx",  # type: ignore[valid-type,assignment]
    # str, not Path: Path("out/") drops the trailing slash that marks a folder still to be created
    output: Annotated[str | None, typer.Option("--output", "-o", help="Artifact path, or folder (created if "
                                               "missing; a trailing / or no suffix means a folder).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint file; without it the weights are random.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size (default: the model's).")] = None,
    batch: Annotated[int, typer.Option(help="Fixed batch size.")] = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", help="Dynamic batch dimension.")] = False,
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default 18).")] = None,
    fp32: Annotated[bool, typer.Option("--fp32", help="Full precision (default unless the target's default is fp16).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", help="Half precision.")] = False,
    int8: Annotated[bool, typer.Option("--int8", help="int8 (calibrated on --calib-data or embedded photos).")] = False,
    calib_data: Annotated[Path | None, typer.Option(help="Folder of calibration images (recursive).")] = None,
    calib_samples: Annotated[int | None, typer.Option(help="Calibration images to use (also lowers the floor).")] = None,
    calib_method: Annotated[CalibMethod, typer.Option(help="Activation range method.")] = CalibMethod.minmax,
    preset: Annotated[str | None, typer.Option(help="int8 preset: x86, arm64 or tensorrt (target-specific).")] = None,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="Simplify the graph.")] = True,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Verify against PyTorch (default on).")] = True,
    threads: Annotated[int, typer.Option(help="Threads for verification and its latency figure.")] = 2,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-O", help="Target option KEY=VALUE, repeatable (e.g. coreml_int8=w8, workspace_mib=2048).")] = None,
) -> None:
    """Export MODEL to a verified edge artifact with a sidecar JSON (preprocessing, versions, hashes, report)."""
    from edgevit.cli.verify import print_report
    from edgevit.export import RandomWeightsWarning, export

    if fp32 + fp16 + int8 > 1:
        raise ConfigError("choose one of --fp32, --fp16 and --int8")
    precision = "int8" if int8 else "fp16" if fp16 else "fp32" if fp32 else None  # None: the target's default
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        report = export(
            model, target=str(getattr(target, "value", target)), precision=precision, output=output,
            checkpoint=checkpoint, img_size=img_size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
            calib_data=calib_data, calib_samples=calib_samples, calib_method=calib_method.value,
            preset=preset, simplify=simplify, verify=verify, threads=threads, options=parse_key_values(option, "--option"),
        )
    for w in caught:
        if issubclass(w.category, RandomWeightsWarning):
            err_console.print(f"[bold yellow]WARNING:[/] {w.message}", highlight=False)
    if report.verification is not None:
        print_report(report.verification)
    if summary := (report.info.get("export") or {}).get("int8_summary"):
        console.print(summary, highlight=False)  # which ops stayed float and what int8 gained, in one line
    for note in report.warnings:
        if note.startswith("not verified"):
            err_console.print(f"[yellow]{note}[/]", highlight=False)
    console.print(f"[green]wrote[/] {report.artifact} ({report.info['size_mb']:.2f} MB) and {report.sidecar.name}")

