"""`edgevit predict` (latency on a device you do not have) and `edgevit calibrate` (fit predictors)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console


@app.command("predict")
def predict_cmd(
    inputs: Annotated[list[str], typer.Argument(help="Model names (exported on the fly, cached) and/or ncnn/ONNX "
                                                "artifacts.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile (edgevit devices shows which "
                                        "can predict); host = this machine's calibration.")] = "host",
    runtime: Annotated[str | None, typer.Option(help="Runtime (default: the profile's, if it has data).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="Threads (default: the profile's).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", "-p", help="fp32 or int8 (default fp32).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size for model names (default: the model's).")] = None,
    json_out: Annotated[str | None, typer.Option("--json", help="Write the records as JSON; file or directory.")] = None,
    md_out: Annotated[str | None, typer.Option("--markdown", help="Write Markdown; file or directory.")] = None,
) -> None:
    """Predict latency on a device profile from its cost model, with an 80% interval from leave-one-out
    errors and warnings where the model extrapolates."""
    from rich.markup import escape
    from rich.table import Table

    from edgevit.predict import report
    from edgevit.predict.api import predict

    log = lambda msg: err_console.print(f"[dim]{msg}[/]")
    preds = predict(inputs, device=device, runtime=runtime, threads=threads, precision=precision,
                    img_size=img_size, log=log)
    p0 = preds[0]
    table = Table(title=f"predicted latency on {p0.device} ({p0.runtime}, {p0.threads} threads, {p0.precision}) "
                        "— a prediction, not a measurement", header_style="bold")
    for col in ("model", "predicted ms", "80% interval ms", "MMACs", "extrapolates"):
        table.add_column(col, justify="left" if col in ("model", "extrapolates") else "right", no_wrap=True)
    for p in preds:
        lo, hi = p.interval_ms
        table.add_row(p.model, f"{p.predicted_ms:.1f}", f"{lo:.1f}-{hi:.1f}", f"{p.mmacs:.0f}",
                      "[yellow]yes[/]" if p.extrapolates else "no")
    console.print(table)
    console.print(f"[dim]{escape(p0.calibration)}[/]", highlight=False)
    for p in preds:
        for w in p.extrapolation:
            err_console.print(f"[yellow]{escape(p.model)}: extrapolates:[/] {escape(w)}", highlight=False)
    for n in dict.fromkeys(n for p in preds for n in p.notes):
        err_console.print(f"[dim]note: {escape(n)}[/]", highlight=False)
    if json_out is not None:
        err_console.print(f"wrote {report.write_json_file(preds, json_out)}")
    if md_out is not None:
        err_console.print(f"wrote {report.write_markdown_file(preds, md_out)}")


@app.command("calibrate")
def calibrate_cmd(
    device: Annotated[str | None, typer.Option("--device", "-d", help="host: measure the standard networks on "
                                               "this machine and fit its predictor.")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="Refit the shipped board predictors from the published "
                                        "tables (edgevit/predict/data/ncnn_benchmark.json).")] = False,
    runtime: Annotated[str, typer.Option(help="Host runtime: ncnn or onnxruntime.")] = "ncnn",
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="Threads (default: the host profile's).")] = None,
    networks: Annotated[str | None, typer.Option(help="Comma-separated subset of the standard networks.")] = None,
    runs: Annotated[int, typer.Option(help="Timed runs per network.")] = 20,
    statistic: Annotated[str, typer.Option(help="median, or min on a loaded machine (interference only adds "
                                           "time).")] = "median",
    out: Annotated[Path | None, typer.Option(help="Where to write the fitted predictor(s) (default: the cache for "
                                             "host, the package data for --refit).")] = None,
) -> None:
    """Fit latency predictors: the host's from measurements here, or the boards' from published tables."""
    from edgevit.errors import ConfigError

    log = lambda msg: err_console.print(f"[dim]{msg}[/]")
    if refit == (device is not None):
        raise ConfigError("give --device host (measure here) or --refit (published tables), one of them")
    if refit:
        from edgevit.predict.boards import refit as do_refit
        from edgevit.predict.boards import write_predictors

        doc = do_refit(log=log)
        path = write_predictors(doc, out)
        s = doc["pooled_loo"]["fp32"]
        console.print(f"refitted {len(doc['predictors'])} predictors (structure {doc['structure']}); pooled fp32 "
                      f"leave-one-out median error {s['median_abs']:.1%}, {s['within_20']:.0%} within ±20%")
        err_console.print(f"wrote {path}")
        return
    if device != "host":
        raise ConfigError(f"calibrate measures this machine only (--device host), not {device!r}; boards are "
                          "fitted from published tables with --refit")
    from edgevit.predict.calibrate import calibrate_host

    names = [n.strip() for n in networks.split(",")] if networks else None
    model, path = calibrate_host(runtime=runtime, threads=threads, networks=names, runs=runs, statistic=statistic,
                                 out=out, log=log)
    console.print(model.describe())
    err_console.print(f"wrote {path}")


@app.command("predict-regress")
def predict_regress_cmd(
    base: Annotated[Path, typer.Option(help="Folder of base artifacts (ncnn folders/.param, .onnx).")],
    head: Annotated[Path, typer.Option(help="Folder of head artifacts, paired with base by model name.")],
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile whose predictor prices both.")],
    runtime: Annotated[str | None, typer.Option(help="Runtime (default: the profile's, if it has data).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="Threads (default: the profile's).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", "-p", help="fp32 or int8 (default fp32).")] = None,
    tolerance: Annotated[float, typer.Option(help="Relative increase of predicted latency that fails.")] = 0.05,
    floor_ms: Annotated[float, typer.Option(help="Smallest predicted increase (ms) that fails.")] = 0.5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the comparison as JSON here.")] = None,
) -> None:
    """Deterministic CI gate: compare a device's predicted latencies of base and head exports; exit 1 on
    a regression (no device, no timing noise)."""
    from rich.table import Table

    from edgevit.predict.data import write_json
    from edgevit.predict.gate import compare_predicted

    rep = compare_predicted(base, head, device=device, runtime=runtime, threads=threads, precision=precision,
                            tolerance=tolerance, floor_ms=floor_ms)
    table = Table(title=f"predicted latency gate on {rep.device} ({rep.predictor}), tolerance {rep.tolerance:.0%} "
                        f"+ {rep.floor_ms:g} ms", header_style="bold")
    for col in ("model", "base ms", "head ms", "ratio", "verdict", "largest change"):
        table.add_column(col, justify="right" if col in ("base ms", "head ms", "ratio") else "left", no_wrap=True)
    for c in rep.cases:
        top = max(c.changed_terms.items(), key=lambda kv: abs(kv[1]), default=None)
        table.add_row(c.model, "—" if c.base_ms is None else f"{c.base_ms:.1f}",
                      "—" if c.head_ms is None else f"{c.head_ms:.1f}", "—" if c.ratio is None else f"{c.ratio:.3f}",
                      f"[red]{c.verdict}[/]" if c.verdict == "regression" else c.verdict,
                      f"{top[0]} {top[1]:+.1f} ms" if top else "")
    console.print(table)
    if json_out is not None:
        err_console.print(f"wrote {write_json(json_out, rep.to_dict())}")
    if rep.failed:
        bad = [c.model for c in rep.cases if c.verdict == "regression"]
        err_console.print(f"[bold red]predicted latency gate failed:[/] {', '.join(bad)}")
        raise typer.Exit(1)
