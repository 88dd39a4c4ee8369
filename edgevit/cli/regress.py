"""`edgevit regress`: the CI latency gate (exit code 1 on a regression, an error, an inconclusive or missing case).

Two modes: paired (`--base REF|DIR --suite FILE`: base and head timed alternately in this job, what CI
uses) and against a stored baseline (`RESULTS --baseline FILE`: boards and history).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgevit.bench.paired_gate import STATISTICS as PAIRED_STATISTICS
from edgevit.bench.verdict import NOISE_MODELS
from edgevit.cli.app import app, console, err_console


@app.command("regress")
def regress_cmd(
    current: Annotated[Path | None, typer.Argument(metavar="RESULTS", help="Result JSON of `edgevit bench ... "
                                                   "--json` (with --baseline).")] = None,
    baseline: Annotated[Path | None, typer.Option(metavar="FILE", help="Baseline JSON, e.g. "
                                                  "benchmarks/baselines/host.json.")] = None,
    base: Annotated[str | None, typer.Option(metavar="REF|DIR", help="Paired mode: a git ref (exported by its own "
                                             "edgevit in a temporary worktree) or a folder of base artifacts.")] = None,
    suite: Annotated[str | None, typer.Option(metavar="SUITE", help="Paired mode: the suite to compare (YAML or a "
                                              "shipped suite's name).")] = None,
    pairs: Annotated[int | None, typer.Option(metavar="N", help="Paired: pairs per case before the first verdict "
                                              "(default: the profile's gate).")] = None,
    max_pairs: Annotated[int | None, typer.Option(metavar="N", help="Paired: at most this many pairs while a case "
                                                  "is inconclusive (default: the profile's gate).")] = None,
    noise: Annotated[str | None, typer.Option(metavar="MODEL", help=f"Paired: the interval of the pair ratios, "
                                              f"{', '.join(NOISE_MODELS)} (default wilcoxon).")] = None,
    runs: Annotated[int | None, typer.Option(metavar="N", help="Paired: timed runs per process (default: the "
                                             "suite's).")] = None,
    tolerance: Annotated[float | None, typer.Option(metavar="R", help="Relative tolerance (default: the "
                                                    "profile's gate).")] = None,
    floor_ms: Annotated[float | None, typer.Option(metavar="MS", help="Absolute floor in ms (default: the "
                                                   "profile's gate).")] = None,
    confidence: Annotated[float, typer.Option(metavar="C", help="Confidence of the interval.")] = 0.95,
    normalize: Annotated[str | None, typer.Option(metavar="MODE", help="Baseline mode: auto (across machines), "
                                                  "always or never divide by the @reference case's ratio (default: "
                                                  "the profile's gate).")] = None,
    statistic: Annotated[str | None, typer.Option(metavar="STAT", help="median, p25 or p10 (baseline mode; default: "
                                                  "the profile's gate); paired, per process: "
                                                  f"{', '.join(PAIRED_STATISTICS)}.")] = None,
    update: Annotated[bool, typer.Option("--update", metavar="", help="Write the current results as the new "
                                         "baseline (refused for an unstable run).")] = False,
    force: Annotated[bool, typer.Option("--force", metavar="", help="With --update: write it even though cases were "
                                        "measured on a busy machine or failed.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Do not fail when a baseline "
                                                "case is missing from this run.")] = False,
    allow_inconclusive: Annotated[bool, typer.Option("--allow-inconclusive", metavar="", help="Do not fail when noise "
                                                     "leaves a case inconclusive.")] = False,
    markdown: Annotated[Path | None, typer.Option(metavar="FILE", help="Write the Markdown report (CI summary) "
                                                  "here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the comparison as JSON "
                                                  "here.")] = None,
    fail_on_improvement: Annotated[bool, typer.Option("--fail-on-improvement", metavar="", help="Also fail when a "
                                                      "case got faster (forces a baseline refresh).")] = False,
) -> None:
    """Compare head with a base (paired, --base --suite) or results with a stored baseline; exit 1 on a regression."""
    from edgevit.errors import ConfigError

    if base is not None or suite is not None:
        if base is None or suite is None or current is not None or baseline is not None or update:
            raise ConfigError("paired mode takes --base REF|DIR and --suite FILE (no RESULTS, --baseline or --update)")
        _paired(base, suite, pairs, max_pairs, noise, runs, tolerance, floor_ms, confidence, statistic,
                allow_missing, allow_inconclusive, markdown, json_out, fail_on_improvement)
        return
    if current is None or baseline is None:
        raise ConfigError("give RESULTS --baseline FILE, or --base REF|DIR --suite FILE (paired)")
    if force and not update:
        raise ConfigError("--force only applies to --update")
    _baseline(current, baseline, tolerance, floor_ms, confidence, normalize, statistic, update, force,
              allow_missing, allow_inconclusive, markdown, json_out, fail_on_improvement)


def _baseline(current: Path, baseline: Path, tolerance: float | None, floor_ms: float | None, confidence: float,
              normalize: str | None, statistic: str | None, update: bool, force: bool, allow_missing: bool,
              allow_inconclusive: bool, markdown: Path | None, json_out: Path | None, fail_on_improvement: bool) -> None:
    from edgevit.bench import tables
    from edgevit.bench.regress import regress

    report = regress(current, baseline, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence,
                     normalize=normalize, statistic=statistic, update=update, force=force,
                     allow_missing=allow_missing, allow_inconclusive=allow_inconclusive)
    console.print(tables.regress_table(report))
    for note in report.notes:
        err_console.print(f"[dim]{note}[/]")
    _write(report, tables.regress_markdown(report), markdown, json_out)
    if report.wins and not update:
        err_console.print(f"[bold green]{len(report.wins)} case(s) faster than the baseline:[/] refresh it with "
                          f"`edgevit regress {current} --baseline {baseline} --update` to keep the gate tight")
    if not update:
        _verdict(report, fail_on_improvement)


def _paired(base: str, suite: str, pairs: int | None, max_pairs: int | None, noise: str | None, runs: int | None,
            tolerance: float | None, floor_ms: float | None, confidence: float, statistic: str | None,
            allow_missing: bool, allow_inconclusive: bool, markdown: Path | None, json_out: Path | None,
            fail_on_improvement: bool) -> None:
    from edgevit.bench.paired_gate import paired_gate
    from edgevit.bench.paired_report import paired_markdown, paired_table

    report = paired_gate(base, suite, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence, noise=noise,
                         statistic=statistic, min_pairs=pairs, max_pairs=max_pairs, allow_missing=allow_missing,
                         allow_inconclusive=allow_inconclusive, protocol={"runs": runs})
    console.print(paired_table(report))
    for note in report.notes:
        err_console.print(f"[dim]{note}[/]", soft_wrap=True, highlight=False)
    _write(report, paired_markdown(report), markdown, json_out)
    _verdict(report, fail_on_improvement)


def _write(report: Any, text: str, markdown: Path | None, json_out: Path | None) -> None:
    from edgevit.files import atomic_write_json, atomic_write_text

    if markdown is not None:
        err_console.print(f"wrote {atomic_write_text(markdown, text)}")
    if json_out is not None:
        err_console.print(f"wrote {atomic_write_json(json_out, report.to_dict(), indent=1)}")


_WHY = {
    "regression": "slower beyond the tolerance",
    "error": "failed",
    "inconclusive": "too noisy to judge (rerun with more pairs, on a quieter machine, or pass --allow-inconclusive)",
    "missing": "in the base, not in this run (--allow-missing accepts that)",
}


def _verdict(report: Any, fail_on_improvement: bool) -> None:
    """Raise RegressionError (exit 1) with one line naming every failing case and why."""
    from edgevit.errors import RegressionError

    if report.failed:
        by_kind: dict[str, list[str]] = {}
        for c in report.failing:
            by_kind.setdefault(c.verdict, []).append(c.id)
        parts = [f"{kind}: {', '.join(ids)} ({_WHY[kind]})" for kind, ids in by_kind.items()]
        raise RegressionError("latency gate failed: " + "; ".join(parts))
    if fail_on_improvement and report.wins:
        raise RegressionError(f"{len(report.wins)} case(s) got faster: refresh the baseline (--update)")
