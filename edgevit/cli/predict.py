"""`edgevit predict` (latency on a device you do not have) and `edgevit calibrate` (fit predictors)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from edgevit.cli.app import app, console, err_console
from edgevit.richtable import Column, show, table


@app.command("predict")
def predict_cmd(
    inputs: Annotated[list[str], typer.Argument(metavar="MODEL|ARTIFACT...", help="Model names (exported on the "
                                                "fly, cached) and/or ncnn/ONNX artifacts.")],
    device: Annotated[str, typer.Option("--device", "-d", metavar="PROFILE", help="Device profile (edgevit devices "
                                        "shows which can predict); host = this machine's calibration.")] = "host",
    runtime: Annotated[str | None, typer.Option(metavar="NAME", help="Runtime (default: the profile's, if it has "
                                                "data).")] = None,
    threads: Annotated[int | None, typer.Option(metavar="N", help="Threads (default: the profile's).")] = None,
    precision: Annotated[str | None, typer.Option("--precision", "-p", metavar="P", help="fp32 or int8 (default "
                                                  "fp32).")] = None,
    img_size: Annotated[int | None, typer.Option(metavar="PX", help="Input size for model names (default: the "
                                                 "model's).")] = None,
    json_out: Annotated[str | None, typer.Option("--json", metavar="PATH", help="Write the records as JSON; file or "
                                                 "directory.")] = None,
    md_out: Annotated[str | None, typer.Option("--markdown", metavar="PATH", help="Write Markdown; file or "
                                               "directory.")] = None,
) -> None:
    """Predict latency on a device profile from its cost model, with an 80% interval from leave-one-out
    errors and warnings where the model extrapolates."""
    from edgevit.predict import report
    from edgevit.predict.api import predict

    preds = predict(inputs, device=device, runtime=runtime, threads=threads, precision=precision,
                    img_size=img_size, log=_log)
    p0 = preds[0]
    cols = [Column("model", numeric=False, wrap=False), Column("predicted ms"), Column("80% interval ms"),
            Column("MMACs"), Column("extrapolates", numeric=False)]
    rows = [[p.model, f"{p.predicted_ms:.1f}", f"{p.interval_ms[0]:.1f}-{p.interval_ms[1]:.1f}", f"{p.mmacs:.0f}",
             "yes" if p.extrapolates else "no"] for p in preds]
    title = f"predicted on {p0.device} ({p0.runtime}, {p0.threads} threads, {p0.precision}): not a measurement"
    show(console, table(cols, rows, title=title, caption=p0.calibration))
    for p in preds:
        for w in p.extrapolation:
            err_console.print(f"[yellow]{escape(p.model)} extrapolates:[/] {escape(w)}", highlight=False,
                              soft_wrap=True)
    for n in dict.fromkeys(n for p in preds for n in p.notes):
        err_console.print(f"[dim]note: {escape(n)}[/]", highlight=False, soft_wrap=True)
    if json_out is not None:
        err_console.print(f"wrote {report.write_json_file(preds, json_out)}")
    if md_out is not None:
        err_console.print(f"wrote {report.write_markdown_file(preds, md_out)}")


def _log(message: str) -> None:
    from edgevit import progress

    progress.notice(message)


@app.command("calibrate")
def calibrate_cmd(
    device: Annotated[str | None, typer.Option("--device", "-d", metavar="PROFILE", help="host: measure the "
                                               "standard networks on this machine and fit its predictor.")] = None,
    refit: Annotated[bool, typer.Option("--refit", metavar="", help="Refit the shipped board predictors from the "
                                        "published tables (edgevit/predict/data/ncnn_benchmark.json).")] = False,
    runtime: Annotated[str, typer.Option(metavar="NAME", help="Host runtime: ncnn or onnxruntime.")] = "ncnn",
    threads: Annotated[int | None, typer.Option(metavar="N", help="Threads (default: the host profile's).")] = None,
    networks: Annotated[str | None, typer.Option(metavar="A,B", help="Comma-separated subset of the standard "
                                                 "networks.")] = None,
    runs: Annotated[int, typer.Option(metavar="N", help="Timed runs per network.")] = 20,
    statistic: Annotated[str, typer.Option(metavar="STAT", help="median, or min on a loaded machine (interference "
                                           "only adds time).")] = "median",
    out: Annotated[Path | None, typer.Option(metavar="PATH", help="Where to write the fitted predictor(s) "
                                             "(default: the cache for host, the package data for --refit).")] = None,
) -> None:
    """Fit latency predictors: the host's from measurements here, or the boards' from published tables."""
    from edgevit.errors import ConfigError

    if refit == (device is not None):
        raise ConfigError("give --device host (measure here) or --refit (published tables), one of them")
    if refit:
        from edgevit.predict.boards import refit as do_refit
        from edgevit.predict.boards import write_predictors

        doc = do_refit(log=_log)
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
                                 out=out, log=_log)
    console.print(model.describe(), soft_wrap=True)
    err_console.print(f"wrote {path}")
