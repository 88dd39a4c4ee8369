"""Bench and gate output: Rich tables for the terminal; JSON (everything, raw samples), CSV (one row per
case, setup and versions in every row) and Markdown (setup header + table) files.

A file option may name a file or a directory; in a directory the file is named after its setup
(`bench_<profile>_<runtime>_<precisions>_t<threads>_b<batch>.json`, as timm names its result CSVs).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.artifact import MB
from edgevit.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from rich.table import Table

    from edgevit.bench.api import BenchResults
    from edgevit.bench.regress import RegressReport

CSV_STATS = ("median", "p90", "p99", "mean", "std", "min", "max", "iqr", "n")


def _f(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def output_path(target: str | Path, results: "BenchResults", suffix: str) -> Path:
    """`target` itself, or `<target>/<setup stem><suffix>` when it is a directory (or ends with '/'); in a
    directory an earlier run's file of the same setup is kept: the new one is numbered (-2, -3, ...)."""
    p = Path(target).expanduser()
    if not (p.is_dir() or str(target).endswith(("/", "\\"))):
        return p
    first = p / f"{results.stem()}{suffix}"
    n = 2
    path = first
    while path.exists():
        path = p / f"{results.stem()}-{n}{suffix}"
        n += 1
    return path


def _reference_ms(results: "BenchResults", model: str | None, batch: int) -> float | None:
    """The profile's published figure for this model, only when measured on that device: a device's figure
    is never put beside another machine's measurement."""
    if not results.setup.get("on_device"):
        return None
    for ref in (results.profile or {}).get("references") or []:
        if model and ref.get("model") == model and int(ref.get("batch", 1)) == batch:
            return float(ref["latency_ms"])
    return None


def measured_on(results: "BenchResults") -> str:
    """local | remote | emulated (results from before boards existed are local)."""
    return str(results.setup.get("measured_on") or "local")


def where_prefix(results: "BenchResults") -> str:
    """'' for this host; 'board NAME: ' for a board; an EMULATED label for a board under qemu."""
    kind, board = measured_on(results), (results.setup.get("board") or {}).get("name", "")
    if kind == "emulated":
        return f"EMULATED board {board} (qemu-user on {results.host.get('kernel_arch', '?')}, not a device timing): "
    return f"board {board}: " if kind == "remote" else ""


def host_line(results: "BenchResults") -> str:
    h = results.host
    freq = f" @ {h['frequency_ghz']} GHz" if h.get("frequency_ghz") else ""
    return (where_prefix(results)
            + f"{h.get('cpu')} x{h.get('cores')}{freq}, {h.get('memory_gb')} GB, {h.get('os')} {h.get('arch')}")


# ---------------------------------------------------------------- rows
def rows(results: "BenchResults") -> list[dict[str, Any]]:
    """One flat dict per case: what the CSV holds and the tables show."""
    s, v = results.setup, results.versions
    out = []
    for r in results.cases:
        c = r.case
        row: dict[str, Any] = {
            "id": c.id, "model": c.model or "", "artifact": Path(c.artifact).name, "target": c.target,
            "runtime": c.runtime, "precision": c.precision, "batch": c.batch, "threads": c.threads,
            "ok": r.ok, "error": r.error,
        }
        row |= {f"{k}_ms" if k != "n" else "runs": r.stats.get(k) for k in CSV_STATS}
        row |= {
            "load_ms": r.load_ms, "first_ms": r.first_ms, "peak_rss_mb": r.peak_rss_mb,
            "rss_loaded_mb": r.rss_loaded_mb,
            "model_size_mb": round(c.model_size_bytes / MB, 3) if c.model_size_bytes else None,
            "params_m": round(c.params / 1e6, 3) if c.params else None,
            "gmacs": round(c.macs / 1e9, 3) if c.macs else None,
            "reference_ms": _reference_ms(results, c.model, c.batch),
            "predicted_ms": (c.predicted or {}).get("predicted_ms"),
            "predicted_interval_ms": "-".join(f"{v:.0f}" for v in (c.predicted or {}).get("interval_ms", [])) or None,
            "predicted_for": (c.predicted or {}).get("device"),
            "runtime_version": r.runtime_version, "runtime_note": c.runtime_note,
            **stability_cells(r.stability),
            "profile": s["profile"], "on_device": s["on_device"], "measured_on": measured_on(results),
            "board": (s.get("board") or {}).get("name", ""), "host_cpu": results.host.get("cpu"),
            "host_cores": results.host.get("cores"), "edgevit_version": v.get("edgevit", ""),
            "python_version": v.get("python", ""), "created": results.created,
        }
        out.append(row)
    return out


def stability_cells(stability: dict[str, Any]) -> dict[str, Any]:
    """The stability columns of a row (edgevit.bench.stability): None where it was not measured."""
    st = stability or {}
    reasons = st.get("reasons") or []
    return {"stable": st.get("stable"), "unstable_kind": "+".join(st.get("flags") or []) or "unstable",
            "unstable_reasons": "; ".join(reasons), "others_cores": st.get("others_cores"),
            "steal_cores": st.get("steal_cores"), "load1": st.get("load1_start"), "spread": st.get("spread")}


# ---------------------------------------------------------------- files
def write_json(results: "BenchResults", target: str | Path) -> Path:
    return atomic_write_json(output_path(target, results, ".json"), results.to_dict(), indent=1)


def to_csv(results: "BenchResults") -> str:
    data = rows(results)
    buf = io.StringIO()
    if data:
        writer = csv.DictWriter(buf, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    return buf.getvalue()


def write_csv(results: "BenchResults", target: str | Path) -> Path:
    return atomic_write_text(output_path(target, results, ".csv"), to_csv(results))


MD_COLUMNS = (("case", "id"), ("median ms", "median_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"),
              ("mean ± std ms", None), ("min ms", "min_ms"), ("max ms", "max_ms"), ("runs", "runs"),
              ("load ms", "load_ms"), ("first ms", "first_ms"), ("peak RSS MB", "peak_rss_mb"),
              ("size MB", "model_size_mb"), ("GMACs", "gmacs"), ("params M", "params_m"),
              ("published ms", "reference_ms"), ("predicted for the device ms (80% interval)", "predicted"),
              ("machine", "stable"))


def _cell(row: dict[str, Any], key: str | None) -> str:
    if key == "predicted":
        return "—" if row["predicted_ms"] is None else f"{row['predicted_ms']:.0f} ({row['predicted_interval_ms']})"
    if key is None:
        return f"{_f(row['mean_ms'])} ± {_f(row['std_ms'])}" if row["ok"] else "—"
    value = row.get(key)
    if key == "id":
        return str(value) + ("" if row["ok"] else f" (failed: {row['error']})")
    if key == "runs":
        return "—" if value is None else str(int(value))
    if key == "stable":  # the reasons are in the warnings above the table
        return "—" if value is None else ("ok" if value else "⚠ " + str(row["unstable_kind"]))
    if isinstance(value, float):
        return _f(value, ".3f" if key in ("gmacs", "params_m") else ".2f")
    return "—" if value is None else str(value)


def to_markdown(results: "BenchResults") -> str:
    s, v = results.setup, results.versions
    title = f"## edgevit bench: {s['profile']}" + ("" if s["on_device"] else f" settings on {results.host.get('cpu')}")
    if measured_on(results) == "emulated":
        title += " — EMULATED (qemu): correctness only, NOT device timings"
    proto = s["protocol"]
    lines = [
        title, "",
        f"- host: {host_line(results)}" + ("" if s["on_device"] else f" (**not a {s['profile']}**)"),
        f"- runtime: {', '.join(s['runtimes'])}; precisions: {', '.join(s['precisions'])}; threads: {s['threads']}; "
        f"batch: {', '.join(map(str, s['batch']))}",
        f"- protocol: warm-up >= {proto['warmup']} runs and {proto['warmup_seconds']} s; timed >= {proto['runs']} "
        f"runs and {proto['min_seconds']} s; one fresh process per case",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- load average (1/5/15 min) at start {results.load_average.get('start')}, at end "
        f"{results.load_average.get('end')}; created {results.created}",
    ]
    lines += [f"- **warning**: {w}" for w in s.get("warnings", [])]
    lines += ["", "| " + " | ".join(h for h, _ in MD_COLUMNS) + " |",
              "|" + "|".join("---" if k == "id" else "---:" for _, k in MD_COLUMNS) + "|"]
    for row in rows(results):
        lines.append("| " + " | ".join(_cell(row, k).replace("|", "\\|") for _, k in MD_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(results: "BenchResults", target: str | Path) -> Path:
    return atomic_write_text(output_path(target, results, ".md"), to_markdown(results))


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """The first pipe table of a Markdown text as a list of {header: cell} (for tests and tools)."""
    table = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(table) < 2:
        return []
    split = lambda ln: [c.strip() for c in ln.strip("|").split(" | ")]  # noqa: E731
    header = split(table[0])
    return [dict(zip(header, split(ln), strict=True)) for ln in table[2:]]


# ---------------------------------------------------------------- terminal
# The terminal's columns: (header, row key, shown only with --wide). Files carry every column.
TERMINAL_COLUMNS = (
    ("median ms", "median_ms", False), ("p90 ms", "p90_ms", False), ("p99 ms", "p99_ms", True),
    ("mean ± std", None, True), ("min ms", "min_ms", True), ("runs", "runs", True), ("load ms", "load_ms", True),
    ("first ms", "first_ms", True), ("peak RSS MB", "peak_rss_mb", False), ("size MB", "model_size_mb", False),
    ("GMACs", "gmacs", True), ("published ms", "reference_ms", True),
)


def _short_id(row: dict[str, Any], one_runtime: bool) -> str:
    """The case id without threads (and without the runtime when there is only one): the caption names them."""
    short = row["id"].replace(f"/t{row['threads']}", "")
    return short.replace(f"/{row['runtime']}", "") if one_runtime else short


def bench_title(results: "BenchResults") -> str:
    s = results.setup
    title = f"edgevit bench — {s['profile']}"
    if not s["on_device"]:
        title += f" settings on {results.host.get('cpu')} x{results.host.get('cores')} (not the device)"
    if measured_on(results) == "emulated":
        title += " — EMULATED (qemu): correctness only, NOT device timings"
    elif measured_on(results) == "remote":
        title += f" — on board {(s.get('board') or {}).get('name', '?')}"
    return title


def bench_table(results: "BenchResults", *, wide: bool = False) -> "Table":
    """The terminal table: 80 columns by default (case, median, p90, first inference, peak RSS, size),
    every column with `wide`; failed cases show their reason under the table (`failure_lines`)."""
    from edgevit.richtable import Column, table

    s = results.setup
    runtimes = ", ".join(f"{rt} {results.versions.get(rt, '')}".strip() for rt in s["runtimes"])
    caption = f"{runtimes}; {s['threads']} threads; {host_line(results)}"
    if any((r.stability or {}).get("stable") is False for r in results.cases):
        caption += "; ⚠ unstable: busy machine or spread samples (see the warnings)"
    shown = [(h, k, w) for h, k, w in TERMINAL_COLUMNS if s["on_device"] or k != "reference_ms"]
    if any(c.case.predicted for c in results.cases):  # off the device: its predicted latency, labelled
        shown.append((f"predicted on {s['profile']} ms", "predicted", False))
    cols = [Column("case", numeric=False, wrap=False)] + [Column(h, wide=w) for h, _k, w in shown]
    keys = [k for _h, k, _w in shown]
    data = rows(results)
    one = len({r["runtime"] for r in data if not r["id"].startswith("@")}) <= 1
    cells = [[_short_id(r, one) + _mark(r), *(_cell(r, k) for k in keys)] for r in data]
    styles = ["red" if not r["ok"] else ("dim" if r["id"].startswith("@") else None) for r in data]
    return table(cols, cells, title=bench_title(results), caption=caption, wide=wide, styles=styles)


def _mark(row: dict[str, Any]) -> str:
    """What follows a case id in the terminal: failed, or ⚠ when measured on a busy machine or spread
    (the reason is in the warnings above the table)."""
    if not row["ok"]:
        return " (failed)"
    return " ⚠" if row["stable"] is False else ""


def choice_lines(results: "BenchResults") -> list[str]:
    """`--runtime auto`: one line per model naming the fastest candidate within the accuracy budget."""
    from edgevit.bench.choose import Candidate, Choice, summary_line

    lines = []
    for data in (results.setup.get("auto") or {}).values():
        cands = [Candidate(**c) for c in data["candidates"]]
        chosen = next((c for c in cands if data["chosen"] and c.case == data["chosen"]["case"]), None)
        lines.append(summary_line(Choice(data["model"], chosen, cands, data["budget"])))
    return lines


def failure_lines(results: "BenchResults") -> list[str]:
    """One line per failed case: its id and the one-line reason."""
    return [f"{c.case.id}: {c.error}" for c in results.cases if not c.ok]


VERDICT_STYLE = {"regression": "bold red", "error": "red", "improvement": "bold green", "missing": "yellow",
                 "new": "cyan", "ok": "", "inconclusive": "bold yellow"}
VERDICT_MARK = {"regression": "❌ regression", "error": "❌ error", "improvement": "🚀 improvement",
                "missing": "⚠️ missing", "new": "🆕 new", "ok": "✅ ok",
                "inconclusive": "❔ inconclusive"}


def _ratio_cells(c: Any, conf: float) -> tuple[str, str]:
    if c.ratio is None:
        return "—", "—"
    return f"{c.ratio:.3f}", f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"


def regress_table(report: "RegressReport", *, wide: bool = False) -> "Table":
    """The stored-baseline gate's terminal table, 80 columns (P(slower) with `wide`); the notes of cases
    that are not ok come under it (`case_notes`)."""
    from edgevit.richtable import Column, table

    title = (f"edgevit regress — {report.profile}: tolerance {report.tolerance:.0%}, floor {report.floor_ms:g} ms"
             + (", normalised by @reference" if report.normalized else ""))
    cols = [Column("case", numeric=False, wrap=False), Column("baseline ms"), Column("current ms"), Column("ratio"),
            Column(f"{report.confidence:.0%} CI"), Column("P(slower)", wide=True), Column("verdict", numeric=False)]
    ids, common = short_case_ids([c.id for c in report.cases])
    cells = [[cid, _f(c.baseline_ms), _f(c.current_ms), _f(c.ratio, ".3f"), interval_cell(c.ci_low, c.ci_high),
              _f(c.p_slower), c.verdict] for cid, c in zip(ids, report.cases, strict=True)]
    caption = (f"{common}; " if common else "") + f"baseline: {report.baseline_host}; current: {report.current_host}"
    return table(cols, cells, title=title, caption=caption, wide=wide,
                 styles=[VERDICT_STYLE[c.verdict] or None for c in report.cases])


def interval_cell(low: float | None, high: float | None) -> str:
    """'1.02-1.25' (two decimals: the terminal's; the files carry three)."""
    if low is None:
        return "—"
    return f"{low:.2f}-{'inf' if high is None or math.isinf(high) else format(high, '.2f')}"


def short_case_ids(ids: list[str]) -> tuple[list[str], str]:
    """Case ids for a terminal table without the runtime and thread segments all of them share
    (model/runtime/precision/bN/tN -> model/precision/bN), and a caption part naming what was left out."""
    split = [i.split("/") for i in ids]
    full = [p for p in split if len(p) == 5]  # `@reference` and other ids are shown whole
    if not full:
        return list(ids), ""
    drop = [k for k in (1, 4) if len({p[k] for p in full}) == 1]
    said = ", ".join(full[0][k] for k in drop)
    return ["/".join(x for k, x in enumerate(p) if k not in drop) if len(p) == 5 else i
            for i, p in zip(ids, split, strict=True)], said


def case_notes(cases: Any) -> list[str]:
    """'id: note' for every case that is not plainly ok (printed under a gate table)."""
    return [f"{c.id}: {c.verdict}: {c.note}" for c in cases if c.note and c.verdict != "ok"]


def regress_markdown(report: "RegressReport") -> str:
    """The gate's report for a CI summary ($GITHUB_STEP_SUMMARY)."""
    counts = ", ".join(f"{n} {v}" for v, n in report.counts().items())
    kinds = sorted({c.verdict for c in report.failing})
    head = ("❌ " + " and ".join("latency regression" if k == "regression" else k for k in kinds) if report.failed
            else "🚀 faster: refresh the baseline" if report.wins else "✅ no regression")
    lines = [
        f"## edgevit latency gate ({report.profile}): {head}", "",
        f"- verdicts: {counts}",
        f"- rule: regression when the {report.confidence:.0%} bootstrap CI of the median ratio is above 1, the "
        f"ratio above {1 + report.tolerance:.2f} and the {report.statistic} grew by more than {report.floor_ms:g} ms",
        f"- baseline host: {report.baseline_host}; current host: {report.current_host}",
    ]
    lines += [f"- {n}" for n in report.notes]
    lines += ["", f"| case | baseline ms | current ms | ratio | {report.confidence:.0%} CI | P(slower) | verdict | note |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for c in report.cases:
        ratio, ci = _ratio_cells(c, report.confidence)
        lines.append(f"| {c.id} | {_f(c.baseline_ms)} | {_f(c.current_ms)} | {ratio} | {ci} | {_f(c.p_slower)} | "
                     f"{VERDICT_MARK[c.verdict]} | {c.note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
