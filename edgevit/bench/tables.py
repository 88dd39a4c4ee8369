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
    """`target` itself, or `<target>/<setup stem><suffix>` when it is a directory (or ends with '/')."""
    p = Path(target)
    if p.is_dir() or str(target).endswith(("/", "\\")):
        p.mkdir(parents=True, exist_ok=True)
        return p / f"{results.stem()}{suffix}"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _reference_ms(results: "BenchResults", model: str | None, batch: int) -> float | None:
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
              ("published ms", "reference_ms"), ("machine", "stable"))


# The terminal shows the essentials (the files carry every column).
TERMINAL_KEYS = ("id", "median_ms", "p90_ms", "p99_ms", None, "min_ms", "runs", "load_ms", "first_ms", "peak_rss_mb",
                 "model_size_mb", "reference_ms")


def _cell(row: dict[str, Any], key: str | None) -> str:
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
        return _f(value, ".3f" if key in ("gmacs", "params_m", "model_size_mb") else ".2f")
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
def bench_table(results: "BenchResults") -> "Table":
    from rich.table import Table

    s = results.setup
    title = f"edgevit bench — {s['profile']}"
    if not s["on_device"]:
        title += f" settings on {results.host.get('cpu')} x{results.host.get('cores')} (NOT the device)"
    if measured_on(results) == "emulated":
        title += " — EMULATED (qemu): correctness only, NOT device timings"
    elif measured_on(results) == "remote":
        title += f" — on board {(s.get('board') or {}).get('name', '?')}"
    caption = (f"{', '.join(s['runtimes'])} {results.versions.get(s['runtimes'][0], '') if s['runtimes'] else ''}; "
               f"{s['threads']} threads; {host_line(results)}")
    if any((r.stability or {}).get("stable") is False for r in results.cases):
        caption += "; ⚠ unstable: busy machine or spread samples (see the warnings)"
    table = Table(title=title, caption=caption, header_style="bold")
    cols = [(h, k) for h, k in MD_COLUMNS if k in TERMINAL_KEYS]
    for head, key in cols:
        table.add_column(head.replace(" ms", "\nms").replace(" MB", "\nMB").replace("mean ± std", "mean±std"),
                         justify="left" if key == "id" else "right", no_wrap=key in ("id", None))
    for row in rows(results):
        cells = [_cell(row, k) for _, k in cols]
        cells[0] = cells[0].replace(f"/{row['runtime']}", "").replace(f"/t{row['threads']}", "")  # in the caption
        if row["stable"] is False:  # measured on a busy machine or spread: the reason is in the warnings
            cells[0] += " ⚠"
        style = "red" if not row["ok"] else ("dim" if row["id"].startswith("@") else None)
        table.add_row(*cells, style=style)
    return table


VERDICT_STYLE = {"regression": "bold red", "error": "red", "improvement": "bold green", "missing": "yellow",
                 "new": "cyan", "ok": "", "inconclusive": "bold yellow"}
VERDICT_MARK = {"regression": "❌ regression", "error": "❌ error", "improvement": "🚀 improvement",
                "missing": "⚠️ missing", "new": "🆕 new", "ok": "✅ ok",
                "inconclusive": "❔ inconclusive"}


def _ratio_cells(c: Any, conf: float) -> tuple[str, str]:
    if c.ratio is None:
        return "—", "—"
    return f"{c.ratio:.3f}", f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"


def regress_table(report: "RegressReport") -> "Table":
    from rich.table import Table

    title = (f"edgevit regress — {report.profile}: tolerance {report.tolerance:.0%}, floor {report.floor_ms:g} ms"
             + (", normalised by @reference" if report.normalized else ""))
    table = Table(title=title, header_style="bold", caption=f"baseline: {report.baseline_host}; current: "
                  f"{report.current_host}")
    for col in ("case", "baseline ms", "current ms", "ratio", f"{report.confidence:.0%} CI", "P(slower)",
                "verdict", "note"):
        table.add_column(col, justify="left" if col in ("case", "verdict", "note") else "right")
    for c in report.cases:
        ratio, ci = _ratio_cells(c, report.confidence)
        table.add_row(c.id, _f(c.baseline_ms), _f(c.current_ms), ratio, ci, _f(c.p_slower), c.verdict, c.note,
                      style=VERDICT_STYLE[c.verdict] or None)
    return table


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
