"""`edgevit regress`: the latency gate (exit 1 on a regression, an error, an inconclusive or missing case;
exit 2 on malformed input).

Three modes, chosen by the options given: paired (`--base REF|DIR --suite SUITE`: base and head timed
alternately in this job, what CI uses), stored (`RESULTS --baseline FILE`: boards and history) and
predicted (`--predicted --base DIR --head DIR --device P`: a device's cost model, for a device with no board).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgevit.bench.paired_gate import STATISTICS as PAIRED_STATISTICS
from edgevit.bench.verdict import NOISE_MODELS
from edgevit.cli.app import app, console, err_console
from edgevit.richtable import show


@app.command("regress")
def regress_cmd(
    current: Annotated[Path | None, typer.Argument(metavar="RESULTS", help="Stored mode: result JSON of `edgevit "
                                                   "bench ... --json`, judged against --baseline.")] = None,
    baseline: Annotated[Path | None, typer.Option(metavar="FILE", help="Stored mode: baseline JSON, e.g. "
                                                  "benchmarks/baselines/host.json.")] = None,
    base: Annotated[str | None, typer.Option(metavar="REF|DIR", help="Paired: a git ref (exported by its own "
                                             "edgevit in a temporary worktree) or a folder of base artifacts; "
                                             "--predicted: a folder of base artifacts.")] = None,
    suite: Annotated[str | None, typer.Option(metavar="SUITE", help="Paired: the suite head runs (YAML or a "
                                              "shipped suite's name).")] = None,
    predicted: Annotated[bool, typer.Option("--predicted", metavar="", help="Predicted mode: compare the "
                                            "--device's predicted latencies of --base and --head artifacts (no "
                                            "device, no timing noise).")] = False,
    head: Annotated[Path | None, typer.Option(metavar="DIR", help="--predicted: folder of head artifacts, paired "
                                              "with --base by model name.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", metavar="PROFILE", help="--predicted: the "
                                               "profile whose predictor prices both.")] = None,
    pairs: Annotated[int | None, typer.Option(metavar="N", help="Paired: pairs per case before the first verdict "
                                              "(default: the profile's gate).")] = None,
    max_pairs: Annotated[int | None, typer.Option(metavar="N", help="Paired: at most this many pairs while a case "
                                                  "is inconclusive (default: the profile's gate).")] = None,
    noise: Annotated[str | None, typer.Option(metavar="MODEL", help=f"Paired: the interval of the pair ratios, "
                                              f"{', '.join(NOISE_MODELS)} (default wilcoxon).")] = None,
    runs: Annotated[int | None, typer.Option(metavar="N", help="Paired: timed runs per process (default: the "
                                             "suite's).")] = None,
    tolerance: Annotated[float | None, typer.Option(metavar="R", help="Relative tolerance (default: the "
                                                    "profile's gate; --predicted 0.05).")] = None,
    floor_ms: Annotated[float | None, typer.Option(metavar="MS", help="Absolute floor in ms (default: the "
                                                   "profile's gate; --predicted 0.5).")] = None,
    confidence: Annotated[float, typer.Option(metavar="C", help="Confidence of the interval (paired, "
                                              "stored).")] = 0.95,
    normalize: Annotated[str | None, typer.Option(metavar="MODE", help="Stored: auto (across machines), always or "
                                                  "never divide by the @reference case's ratio (default: the "
                                                  "profile's gate).")] = None,
    statistic: Annotated[str | None, typer.Option(metavar="STAT", help="Stored: median, p25 or p10 (default: the "
                                                  "profile's gate); paired, per process: "
                                                  f"{', '.join(PAIRED_STATISTICS)}.")] = None,
    update: Annotated[bool, typer.Option("--update", metavar="", help="Stored: write RESULTS as the new baseline "
                                         "(refused for an unstable run).")] = False,
    force: Annotated[bool, typer.Option("--force", metavar="", help="With --update: write it even though cases were "
                                        "measured on a busy machine or failed.")] = False,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", metavar="", help="Do not fail when a base or "
                                                "baseline case is missing from head / this run.")] = False,
    allow_inconclusive: Annotated[bool, typer.Option("--allow-inconclusive", metavar="", help="Do not fail when noise "
                                                     "leaves a case inconclusive.")] = False,
    markdown: Annotated[Path | None, typer.Option(metavar="FILE", help="Write the Markdown report (CI summary) "
                                                  "here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the comparison as JSON "
                                                  "here.")] = None,
    fail_on_improvement: Annotated[bool, typer.Option("--fail-on-improvement", metavar="", help="Also fail when a "
                                                      "case got faster (forces a baseline refresh).")] = False,
    wide: Annotated[bool, typer.Option("--wide", metavar="", help="Every column (pairs, P(slower)); the table may "
                                       "then be wider than 80 columns.")] = False,
) -> None:
    """The latency gate, in one of three modes; exit 1 on a regression (or an error, an inconclusive or a
    missing case), 2 on malformed input.

    \b
    paired:    --base REF|DIR --suite SUITE   base and head timed in turn here (CI)
    stored:    RESULTS --baseline FILE        boards and history (--update)
    predicted: --predicted --base DIR --head DIR --device P   no board needed
    """
    given = {"RESULTS": current is not None, "--baseline": baseline is not None, "--base": base is not None,
             "--suite": suite is not None, "--head": head is not None, "--device": device is not None,
             "--pairs": pairs is not None, "--max-pairs": max_pairs is not None, "--noise": noise is not None,
             "--runs": runs is not None, "--normalize": normalize is not None, "--update": update,
             "--force": force, "--statistic": statistic is not None}
    mode = choose_mode(predicted, given)
    if mode == "predicted":
        _predicted(Path(base or ""), head, device, tolerance, floor_ms, allow_missing, markdown, json_out,
                   fail_on_improvement)
    elif mode == "paired":
        _paired(str(base), str(suite), pairs, max_pairs, noise, runs, tolerance, floor_ms, confidence, statistic,
                allow_missing, allow_inconclusive, markdown, json_out, fail_on_improvement, wide)
    else:
        _baseline(Path(str(current)), Path(str(baseline)), tolerance, floor_ms, confidence, normalize, statistic,
                  update, force, allow_missing, allow_inconclusive, markdown, json_out, fail_on_improvement, wide)


# Each mode: its usage, the options it needs, and those it accepts besides the shared ones (tolerance,
# floor, --allow-*, outputs).
MODES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "paired": ("--base REF|DIR --suite SUITE", ("--base", "--suite"),
               ("--pairs", "--max-pairs", "--noise", "--runs", "--statistic")),
    "stored": ("RESULTS --baseline FILE", ("RESULTS", "--baseline"), ("--normalize", "--statistic", "--update", "--force")),
    "predicted": ("--predicted --base DIR --head DIR --device PROFILE", ("--base", "--head", "--device"), ()),
}


def choose_mode(predicted: bool, given: dict[str, bool]) -> str:
    """The mode the options ask for; ConfigError (exit 2, one line) for a missing or misplaced option."""
    from edgevit.errors import ConfigError

    if predicted:
        mode = "predicted"
    elif given["--base"] or given["--suite"]:
        mode = "paired"
    elif given["RESULTS"] or given["--baseline"]:
        mode = "stored"
    else:
        raise ConfigError("give " + ", or ".join(f"{use} ({m})" for m, (use, _, _) in MODES.items()))
    use, needs, extra = MODES[mode]
    lacking = [o for o in needs if not given[o]]
    if lacking:
        raise ConfigError(f"{mode} mode is `edgevit regress {use}`: {' and '.join(lacking)} missing")
    stray = [o for o, on in given.items() if on and o not in needs + extra]
    if stray:
        raise ConfigError(f"{', '.join(stray)}: not an option of {mode} mode (`edgevit regress {use}`)")
    if given["--force"] and not given["--update"]:
        raise ConfigError("--force only applies to --update")
    return mode


def _baseline(current: Path, baseline: Path, tolerance: float | None, floor_ms: float | None, confidence: float,
              normalize: str | None, statistic: str | None, update: bool, force: bool, allow_missing: bool,
              allow_inconclusive: bool, markdown: Path | None, json_out: Path | None, fail_on_improvement: bool,
              wide: bool = False) -> None:
    from edgevit.bench import tables
    from edgevit.bench.regress import regress

    report = regress(current, baseline, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence,
                     normalize=normalize, statistic=statistic, update=update, force=force,
                     allow_missing=allow_missing, allow_inconclusive=allow_inconclusive)
    show(console, tables.regress_table(report, wide=wide))
    for note in [*tables.case_notes(report.cases), *report.notes]:
        err_console.print(f"[dim]{note}[/]", soft_wrap=True, highlight=False)
    _write(report, tables.regress_markdown(report), markdown, json_out)
    if report.wins and not update:
        err_console.print(f"[bold green]{len(report.wins)} case(s) faster than the baseline:[/] refresh it with "
                          f"`edgevit regress {current} --baseline {baseline} --update` to keep the gate tight")
    if not update:
        _verdict(report, fail_on_improvement)


def _paired(base: str, suite: str, pairs: int | None, max_pairs: int | None, noise: str | None, runs: int | None,
            tolerance: float | None, floor_ms: float | None, confidence: float, statistic: str | None,
            allow_missing: bool, allow_inconclusive: bool, markdown: Path | None, json_out: Path | None,
            fail_on_improvement: bool, wide: bool = False) -> None:
    from edgevit.bench import tables
    from edgevit.bench.paired_gate import paired_gate
    from edgevit.bench.paired_report import paired_markdown, paired_table

    report = paired_gate(base, suite, tolerance=tolerance, floor_ms=floor_ms, confidence=confidence, noise=noise,
                         statistic=statistic, min_pairs=pairs, max_pairs=max_pairs, allow_missing=allow_missing,
                         allow_inconclusive=allow_inconclusive, protocol={"runs": runs})
    show(console, paired_table(report, wide=wide))
    for note in [*tables.case_notes(report.cases), *report.notes]:
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
_WHY_STORED = {"inconclusive": "too noisy to judge (rerun on a quieter machine, compare paired with --base REF "
                               "--suite SUITE, or pass --allow-inconclusive)"}


def _verdict(report: Any, fail_on_improvement: bool) -> None:
    """Raise RegressionError (exit 1) with one line naming every failing case and why."""
    from edgevit.errors import RegressionError

    if report.failed:
        by_kind: dict[str, list[str]] = {}
        for c in report.failing:
            by_kind.setdefault(c.verdict, []).append(c.id)
        why = _WHY | (_WHY_STORED if report.mode == "baseline" else {})
        parts = [f"{kind}: {', '.join(ids)} ({why[kind]})" for kind, ids in by_kind.items()]
        raise RegressionError("latency gate failed: " + "; ".join(parts))
    if fail_on_improvement and report.wins:
        raise RegressionError(f"{len(report.wins)} case(s) got faster: {', '.join(c.id for c in report.wins)}"
                              + (" (refresh the baseline: --update)" if report.mode == "baseline" else ""))


def _predicted(base: Path, head: Path | None, device: str | None, tolerance: float | None, floor_ms: float | None,
               allow_missing: bool, markdown: Path | None, json_out: Path | None, fail_on_improvement: bool) -> None:
    """`regress --predicted`: a device's predicted latencies of base vs head artifacts (deterministic)."""
    from edgevit.errors import ConfigError, RegressionError
    from edgevit.predict.gate import (
        DEFAULT_FLOOR_MS,
        DEFAULT_TOLERANCE,
        compare_predicted,
        predicted_markdown,
    )
    from edgevit.richtable import Column, table

    assert head is not None and device is not None  # choose_mode checked them
    rep = compare_predicted(base, head, device=device, tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
                            floor_ms=DEFAULT_FLOOR_MS if floor_ms is None else floor_ms)
    if not any(c.verdict in ("regression", "improvement", "ok") for c in rep.cases):
        raise ConfigError(f"no model in common between --base {base} ({_names(rep, 'missing')}) and --head {head} "
                          f"({_names(rep, 'new')}): nothing to compare")
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
    _write(rep, predicted_markdown(rep), markdown, json_out)
    by_kind: dict[str, list[str]] = {}
    for c in rep.cases:
        if c.verdict == "regression" or (c.verdict == "missing" and not allow_missing):
            by_kind.setdefault(c.verdict, []).append(c.model)
    if by_kind:
        raise RegressionError("predicted latency gate failed: "
                              + "; ".join(f"{k}: {', '.join(ids)} ({_WHY[k]})" for k, ids in by_kind.items()))
    wins = [c for c in rep.cases if c.verdict == "improvement"]
    if fail_on_improvement and wins:
        raise RegressionError(f"{len(wins)} model(s) got faster: {', '.join(c.model for c in wins)}")


def _names(rep: Any, verdict: str) -> str:
    names = [c.model for c in rep.cases if c.verdict == verdict]
    return ", ".join(names) if names else "none"
