"""`edgevit export MODEL --target T [--fp16|--int8]`: parse, call `edgevit.export.export`, print the report."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console, parse_key_values
from edgevit.errors import ConfigError


BEST = "best"


def _choices(name: str, values: tuple[str, ...] | list[str]) -> type[Enum]:
    """A str Enum of registry values, so Typer lists and checks them (derived, never kept by hand)."""
    return Enum(name, {v: v for v in values}, type=str)  # type: ignore[return-value]


def _registry_choices() -> tuple[type[Enum], type[Enum], str]:
    from edgevit.backends import backends, calib_methods

    rows = backends()
    presets = "; ".join(f"{k}: {', '.join(b.presets)}" for k, b in rows.items() if b.presets)
    # "best" is no target: it measures the --device's candidate runtimes and exports the fastest
    return _choices("TargetChoice", [*rows, BEST]), _choices("CalibMethod", calib_methods()), presets


TargetChoice, CalibMethod, _PRESETS = _registry_choices()


@app.command("export")
def export_cmd(
    model: Annotated[str, typer.Argument(help="Model name or alias (see `edgevit models`).", metavar="MODEL")],
    target: Annotated[TargetChoice, typer.Option("--target", "-t", help="Export target; best: measure the "  # type: ignore[valid-type]
                                                 "--device's candidate runtimes here, export the fastest within "
                                                 "the accuracy budget.")] = "onnx",  # type: ignore[assignment]
    device: Annotated[str | None, typer.Option("--device", "-d", metavar="PROFILE", help="With --target best: "
                                               "the device profile whose runtimes compete.")] = None,
    # str, not Path: Path("out/") drops the trailing slash that marks a folder still to be created
    output: Annotated[str | None, typer.Option("--output", "-o", metavar="PATH", help="Artifact path, or folder "
                                               "(created if missing; a trailing / or no suffix means a folder).")] = None,
    checkpoint: Annotated[Path | None, typer.Option(metavar="FILE", help="Checkpoint (state dict); without it "
                                                    "the weights are seeded, not trained.")] = None,
    num_classes: Annotated[int | None, typer.Option(metavar="N", help="Classes of a fine-tuned checkpoint's head "
                                                    "(default: the model's, 1000).")] = None,
    img_size: Annotated[int | None, typer.Option(metavar="PX", help="Input size (default: the model's).")] = None,
    batch: Annotated[int, typer.Option(metavar="N", help="Fixed batch size.")] = 1,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch", metavar="", help="Dynamic batch dimension.")] = False,
    opset: Annotated[int | None, typer.Option(metavar="N", help="ONNX opset (onnx: 17..23, default 20).")] = None,
    fp32: Annotated[bool, typer.Option("--fp32", metavar="", help="Full precision (default unless the target's "
                                       "default is fp16).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16", metavar="", help="Half precision.")] = False,
    int8: Annotated[bool, typer.Option("--int8", metavar="", help="int8, calibrated on --calib-data or the "
                                       "embedded photos; onnx, executorch and openvino keep float where int8 "
                                       "measures slower here (docs/int8.md).")] = False,
    int8_force: Annotated[bool, typer.Option("--int8-force", metavar="", help="int8 (implies --int8), written "
                                             "even where it measured slower than fp32.")] = False,
    calib_data: Annotated[Path | None, typer.Option(metavar="DIR", help="Folder of calibration images "
                                                    "(recursive).")] = None,
    calib_samples: Annotated[int | None, typer.Option(metavar="N", help="Calibration images to use (also lowers "
                                                      "the floor).")] = None,
    calib_method: Annotated[CalibMethod | None, typer.Option(help="Activation range method (default: the "  # type: ignore[valid-type]
                                                             "target's first).")] = None,
    preset: Annotated[str | None, typer.Option(metavar="NAME", help=f"int8 preset ({_PRESETS}).")] = None,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", metavar="", help="Simplify the graph.")] = True,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", metavar="", help="Verify against PyTorch.")] = True,
    threads: Annotated[int | None, typer.Option(metavar="N", help="Threads for verification, its latency "
                                                "figure and int8's per-node measurements (default 2); with "
                                                "--target best, for the measurements (default: the profile's).")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-O", metavar="KEY=VALUE", help="Target option, repeatable (e.g. coreml_int8=w8, "
        "workspace_mib=2048).")] = None,
) -> None:
    """Export MODEL to a verified edge artifact with its record (preprocessing, versions, hashes, report)."""
    from edgevit.artifact import format_size
    from edgevit.cli.verify import print_report
    from edgevit.export import DEFAULT_THREADS, export, seeded_weights_notice

    if fp32 + fp16 + int8 > 1:
        raise ConfigError("choose one of --fp32, --fp16 and --int8")
    if int8_force and (fp32 or fp16):
        raise ConfigError("--int8-force goes with --int8")
    int8 = int8 or int8_force  # --int8-force alone means int8, forced
    precision = "int8" if int8 else "fp16" if fp16 else "fp32" if fp32 else None  # None: the target's default
    if str(getattr(target, "value", target)) == BEST:
        from edgevit.bench.choose import export_best

        report = export_best(model, device=device or "host", output=output, threads=threads,
                             precisions=[precision] if precision else None)
        console.print(report.warnings[0], soft_wrap=True, highlight=False)
        console.print(f"[green]wrote[/] {report.artifact} ({format_size(report.record.size_bytes)}) and "
                      f"{report.sidecar.name}", soft_wrap=True)
        return
    if device is not None:
        raise ConfigError("--device goes with --target best (an export itself is not tied to a device)")
    report = export(
        model, target=str(getattr(target, "value", target)), precision=precision, output=output,
        checkpoint=checkpoint, img_size=img_size, batch=batch, dynamic_batch=dynamic_batch, opset=opset,
        calib_data=calib_data, calib_samples=calib_samples, calib_method=getattr(calib_method, "value", calib_method),
        preset=preset, simplify=simplify, verify=verify, threads=DEFAULT_THREADS if threads is None else threads,
        options=parse_key_values(option, "--option"), num_classes=num_classes, int8_force=int8_force,
    )
    if report.verification is not None:
        print_report(report.verification)
    if summary := report.record.export.get("int8_summary"):  # what runs int8, what stayed float
        console.print(summary, highlight=False, soft_wrap=True)
    for note in report.warnings:
        if note != seeded_weights_notice(report.record.model):  # that one was shown before the work started
            err_console.print(f"[yellow]{note}[/]", highlight=False, soft_wrap=True)
    console.print(f"[green]wrote[/] {report.artifact} ({format_size(report.record.size_bytes)}) and "
                  f"{report.sidecar.name}", soft_wrap=True)
