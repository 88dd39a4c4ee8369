"""The paired gate's report: a Rich table for the terminal and Markdown for a CI summary ($GITHUB_STEP_SUMMARY)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from edgevit.bench.tables import VERDICT_MARK, VERDICT_STYLE, interval_cell, short_case_ids

if TYPE_CHECKING:
    from rich.table import Table

    from edgevit.bench.paired_gate import PairedCase, PairedReport


def _f(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _ratio(c: "PairedCase") -> tuple[str, str]:
    if c.ratio is None:
        return "—", "—"
    return f"{c.ratio:.3f}", f"[{_f(c.ci_low, '.3f')}, {_f(c.ci_high, '.3f') if c.ci_high is not None else 'inf'}]"


def headline(report: "PairedReport") -> str:
    """One line: what the gate concluded."""
    if report.failed:
        kinds = sorted({c.verdict for c in report.failing})
        return "❌ " + " and ".join("latency regression" if k == "regression" else k for k in kinds)
    if report.wins:
        return "🚀 faster"
    return "✅ no regression"


def paired_table(report: "PairedReport", *, wide: bool = False) -> "Table":
    """The paired gate's terminal table, 80 columns (pairs with `wide`; the Markdown has them); the notes of
    cases that are not ok come under it."""
    from edgevit.richtable import Column, table

    cols = [Column("case", numeric=False, wrap=False), Column("base ms"), Column("head ms"), Column("ratio"),
            Column(f"{report.confidence:.0%} interval"), Column("pairs", wide=True), Column("verdict", numeric=False)]
    ids, common = short_case_ids([c.id for c in report.cases])
    cells = [[cid, _f(c.base_ms), _f(c.head_ms), _f(c.ratio, ".3f"), interval_cell(c.ci_low, c.ci_high),
              str(c.pairs or "—"), c.verdict] for cid, c in zip(ids, report.cases, strict=True)]
    caption = ((f"{common}; " if common else "") + f"{report.host}; tolerance {report.tolerance:.0%}, {report.noise} "
               f"{report.confidence:.0%} interval of per-pair {report.statistic} ratios")
    return table(cols, cells, title=f"edgevit regress ({report.mode}) — {report.profile}: {report.base} vs "
                 f"{report.head}", caption=caption, wide=wide,
                 styles=[VERDICT_STYLE.get(c.verdict) or None for c in report.cases])


def paired_markdown(report: "PairedReport") -> str:
    counts = ", ".join(f"{n} {v}" for v, n in report.counts().items())
    measured = report.mode == "paired"
    lines = [
        f"## edgevit latency gate, {report.mode} ({report.profile}): {headline(report)}", "",
        f"- base: {report.base}; head: {report.head}; "
        + (f"measured on {report.host}, interleaved in one job" if measured else report.host),
        f"- verdicts: {counts}",
        f"- rule: regression when the {report.confidence:.0%} {report.noise} interval of the "
        + (f"per-pair ratios (head/base, {report.statistic} of each fresh process)" if measured else "ratios (head/base)")
        + f" lies above 1 and the ratio exceeds {1 + report.tolerance:.2f}; inconclusive when noise leaves it open",
    ]
    if measured:
        lines.append(f"- load average (1/5/15 min) at start {report.load_average.get('start')}, at end "
                     f"{report.load_average.get('end')}")
    lines += [f"- {n}" for n in report.notes]
    lines += ["", "| case | base ms | head ms | ratio | interval | pairs | verdict | note |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for c in report.cases:
        ratio, ci = _ratio(c)
        lines.append(f"| {c.id} | {_f(c.base_ms)} | {_f(c.head_ms)} | {ratio} | {ci} | {c.pairs or '—'} | "
                     f"{VERDICT_MARK.get(c.verdict, c.verdict)} | {c.note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
