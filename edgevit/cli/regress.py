"""`edgevit regress`: the CI latency gate (exit code 1 on a regression or a failed case)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console


@app.command("regress")
def regress_cmd(
    current: Annotated[Path, typer.Argument(metavar="RESULTS", help="Result JSON of `edgevit bench ... --json`.")],
    baseline: Annotated[Path, typer.Option(metavar="FILE", help="Baseline JSON, e.g. "
                                           "benchmarks/baselines/host.json.")],
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
    """Compare results with a baseline case by case; exit 1 on a regression."""
    from edgevit.bench import tables
    from edgevit.bench.regress import regress
    from edgevit.errors import RegressionError
    from edgevit.files import atomic_write_json, atomic_write_text

    report = regress(current, baseline, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence,
                     normalize=normalize, statistic=statistic, update=update)
    console.print(tables.regress_table(report))
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
