"""`edgevit regress`: the CI latency gate (exit code 1 on a regression or a failed case)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console
from edgevit.richtable import show


@app.command("regress")
def regress_cmd(
    current: Annotated[Path | None, typer.Argument(metavar="RESULTS", help="Result JSON of `edgevit bench ... "
                                                   "--json` (not with --predicted).")] = None,
    baseline: Annotated[Path | None, typer.Option(metavar="FILE", help="Baseline JSON, e.g. "
                                                  "benchmarks/baselines/host.json.")] = None,
    predicted: Annotated[bool, typer.Option("--predicted", metavar="", help="Deterministic mode: compare the "
                                            "--device's predicted latencies of --base and --head artifacts (no "
                                            "device, no timing noise).")] = False,
    base: Annotated[Path | None, typer.Option(metavar="DIR", help="--predicted: folder of base artifacts.")] = None,
    head: Annotated[Path | None, typer.Option(metavar="DIR", help="--predicted: folder of head artifacts, paired "
                                              "with base by model name.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", metavar="PROFILE", help="--predicted: the "
                                               "profile whose predictor prices both.")] = None,
    tolerance: Annotated[float | None, typer.Option(metavar="R", help="Relative tolerance (default: the "
                                                    "profile's gate).")] = None,
    floor_ms: Annotated[float | None, typer.Option(metavar="MS", help="Absolute floor in ms (default: the "
                                                   "profile's gate).")] = None,
    confidence: Annotated[float, typer.Option(metavar="C", help="Confidence of the bootstrap interval.")] = 0.95,
    normalize: Annotated[str | None, typer.Option(metavar="MODE", help="auto (across machines), always or never: "
                                                  "divide by the @reference case's ratio (default: the profile's "
                                                  "gate).")] = None,
    statistic: Annotated[str | None, typer.Option(metavar="STAT", help="median, p25 or p10 (default: the "
                                                  "profile's gate).")] = None,
    update: Annotated[bool, typer.Option("--update", metavar="", help="Write the current results as the new "
                                         "baseline.")] = False,
    markdown: Annotated[Path | None, typer.Option(metavar="FILE", help="Write the Markdown report (CI summary) "
                                                  "here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the comparison as JSON "
                                                  "here.")] = None,
    fail_on_improvement: Annotated[bool, typer.Option("--fail-on-improvement", metavar="", help="Also fail when a "
                                                      "case got faster (forces a baseline refresh).")] = False,
) -> None:
    """Compare results with a baseline case by case (or, --predicted, two sets of artifacts by a device's
    predicted latency); exit 1 on a regression."""
    from edgevit.bench import tables
    from edgevit.bench.regress import regress
    from edgevit.errors import ConfigError, RegressionError
    from edgevit.files import atomic_write_json, atomic_write_text

    if predicted:
        _predicted(base, head, device, tolerance, floor_ms, json_out)
        return
    if current is None or baseline is None:
        raise ConfigError("give RESULTS and --baseline FILE (or --predicted with --base, --head and --device)")
    report = regress(current, baseline, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence,
                     normalize=normalize, statistic=statistic, update=update)
    show(console, tables.regress_table(report))
    for note in report.notes:
        err_console.print(f"[dim]{note}[/]")
    if markdown is not None:
        err_console.print(f"wrote {atomic_write_text(markdown, tables.regress_markdown(report))}")
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict(), indent=1)
    if report.wins and not update:
        err_console.print(f"[bold green]{len(report.wins)} case(s) faster than the baseline:[/] refresh it with "
                          f"`edgevit regress {current} --baseline {baseline} --update` to keep the gate tight")
    if update:
        return
    if report.failed:
        bad = [c.id for c in report.cases if c.verdict in ("regression", "error")]
        raise RegressionError(f"latency gate failed: {', '.join(bad)}")
    if fail_on_improvement and report.wins:
        raise RegressionError(f"{len(report.wins)} case(s) got faster: refresh the baseline (--update)")


def _predicted(base: Path | None, head: Path | None, device: str | None, tolerance: float | None,
               floor_ms: float | None, json_out: Path | None) -> None:
    """`regress --predicted`: a device's predicted latencies of base vs head artifacts."""
    from edgevit.errors import ConfigError, RegressionError
    from edgevit.files import atomic_write_json
    from edgevit.predict.gate import compare_predicted
    from edgevit.richtable import Column, show, table

    if base is None or head is None or device is None:
        raise ConfigError("--predicted needs --base DIR, --head DIR and --device PROFILE")
    rep = compare_predicted(base, head, device=device, tolerance=0.05 if tolerance is None else tolerance,
                            floor_ms=0.5 if floor_ms is None else floor_ms)
    cols = [Column("model", numeric=False, wrap=False), Column("base ms"), Column("head ms"), Column("ratio"),
            Column("verdict", numeric=False), Column("largest change", numeric=False)]
    rows = []
    for c in rep.cases:
        top = max(c.changed_terms.items(), key=lambda kv: abs(kv[1]), default=None)
        rows.append([c.model, "—" if c.base_ms is None else f"{c.base_ms:.1f}",
                     "—" if c.head_ms is None else f"{c.head_ms:.1f}", "—" if c.ratio is None else f"{c.ratio:.3f}",
                     c.verdict, f"{top[0]} {top[1]:+.1f} ms" if top else ""])
    show(console, table(cols, rows, title=f"predicted latency gate on {rep.device}", styles=[
        "red" if c.verdict == "regression" else None for c in rep.cases],
        caption=f"{rep.predictor}; tolerance {rep.tolerance:.0%} + {rep.floor_ms:g} ms"))
    if json_out is not None:
        err_console.print(f"wrote {atomic_write_json(json_out, rep.to_dict())}")
    if rep.failed:
        raise RegressionError("predicted latency gate failed: "
                              + ", ".join(c.model for c in rep.cases if c.verdict == "regression"))
