"""Fit the board predictors from the shipped ncnn tables: structure choice, transfer ratios, int8.

`refit()` is what `edgevit calibrate --refit` runs. Steps, all deterministic:
1. every (board, threads) fp32 table is fitted per candidate structure without transfer; the
   structure with the lowest pooled leave-one-out median error over all boards is chosen;
2. transfer ratios: for each MAC term, per board where networks exercise it, coefficient / dense
   coefficient; a board lacking the term gets the median over *other* boards of the same CPU family
   (ARM or x86). The transfer is tested by leaving each board out: its networks that exercise the
   term are predicted with the term transferred from the remaining boards (`transfer errors`);
3. every table is refitted with those ratios (its LOO folds use them too);
4. int8 tables (>= 4 networks) are fitted on the int8 terms, the float part priced by the fp32 model
   of the same board and threads.
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgevit.predict.costmodel import (
    DEFAULT_STRUCTURE,
    INT8_STRUCTURES,
    MAC_TERMS,
    STRUCTURES,
    TRANSFER_BASE,
    CostModel,
    LooStats,
    Row,
    exercised,
    fit_coefficients,
    fit_model,
    predictor_key,
)
from edgevit.predict.data import PREDICTORS_SCHEMA, benchmark_data, write_json
from edgevit.predict.features import NetworkFeatures

LATENCY_FIELD = "min_ms"  # benchncnn's min over its loops: robust to one-off stalls (rpi5 mobilenet avg 34 ms, min 9)
MIN_ROWS = 8
MIN_INT8_ROWS = 4


@dataclass
class Table:
    """One board run: the rows of one (board, threads, precision)."""

    board: str
    threads: int
    precision: str
    rows: list[Row]
    source: dict[str, Any]
    family: str


def _family(arch: str) -> str:
    return "x86" if arch.startswith("x86") else "arm"


def tables(data: Mapping[str, Any] | None = None, field: str = LATENCY_FIELD) -> list[Table]:
    """Every (board, threads, precision) table with enough networks whose features we have."""
    data = data or benchmark_data()
    nets = {k: NetworkFeatures.from_dict(v) for k, v in data["networks"].items()}
    out = []
    for bid, board in data["boards"].items():
        for run in board["runs"]:
            for precision in ("fp32", "int8"):
                rows = []
                for r in run["rows"]:
                    key = r["network"] + ("_int8" if precision == "int8" else "")
                    if r["precision"] == precision and key in nets:
                        rows.append(Row(r["network"], nets[key], float(r[field])))
                need = MIN_ROWS if precision == "fp32" else MIN_INT8_ROWS
                if len(rows) < need or run["threads"] is None:
                    continue
                source = {"board": board["heading"], "board_id": bid, "cpu": board["cpu"], "arch": board["arch"],
                          "runtime": "ncnn (benchncnn defaults)", "threads": run["threads"],
                          "powersave": run["powersave"], "latency": f"benchncnn {field.split('_')[0]} over "
                          f"{run['loop_count']} loops", "readme_line": run["line"], "published": run["published"],
                          "repository": data["source"]["repository"], "path": data["source"]["readme"],
                          "read_at_commit": data["source"]["commit"]}
                out.append(Table(bid, int(run["threads"]), precision, rows, source, _family(board["arch"])))
    return _dedupe(out)


def _dedupe(ts: list[Table]) -> list[Table]:
    """One table per key (a board section may paste the same thread count twice: keep the first)."""
    seen: set[str] = set()
    out = []
    for t in ts:
        k = predictor_key(t.board, "ncnn", t.threads, t.precision)
        if k not in seen:
            seen.add(k)
            out.append(t)
    return out


def _ratios(models: Mapping[str, CostModel], ts: Sequence[Table]) -> dict[str, dict[str, float]]:
    """term -> {table key: coefficient / dense coefficient} where the table exercises the term."""
    out: dict[str, dict[str, float]] = {}
    for t in ts:
        m = models[predictor_key(t.board, "ncnn", t.threads, t.precision)]
        base = m.coef.get(TRANSFER_BASE, 0.0)
        for term in m.terms:
            if term in MAC_TERMS and term != TRANSFER_BASE and m.coef_source[term] == "fitted" and base > 0:
                out.setdefault(term, {})[predictor_key(t.board, "ncnn", t.threads, t.precision)] = m.coef[term] / base
    return out


def transfer_for(table: Table, ratios: Mapping[str, Mapping[str, float]], ts: Sequence[Table]) -> dict[str, float]:
    """Median ratio per term over tables of other boards of the same CPU family."""
    family = {predictor_key(t.board, "ncnn", t.threads, t.precision): (t.board, t.family) for t in ts}
    out = {}
    for term, per in ratios.items():
        vals = [v for k, v in per.items() if family[k][0] != table.board and family[k][1] == table.family]
        if vals:
            out[term] = statistics.median(vals)
    return out


def transfer_errors(ts: Sequence[Table], ratios: Mapping[str, Mapping[str, float]],
                    terms: Mapping[str, Sequence[str]]) -> dict[str, list[float]]:
    """Leave-one-board-out test of each transfer: networks exercising the term, predicted on their own
    board with the term transferred from the other boards (relative errors)."""
    out: dict[str, list[float]] = {}
    for term in ratios:
        errs = []
        for t in ts:
            ex_rows = [r for r in t.rows if exercised([r], {term: terms[term]})[term] > 0]
            if not ex_rows:
                continue
            transfer = transfer_for(t, {term: ratios[term]}, ts)
            if term not in transfer:
                continue
            rest = [r for r in t.rows if r not in ex_rows]
            coef, _ = fit_coefficients(rest, terms, transfer=transfer)
            for r in ex_rows:
                pred = sum(coef[k] * _work(r.features, terms[k]) for k in terms)
                errs.append(pred / r.latency_ms - 1.0)
        out[term] = errs
    return out


def _work(f: NetworkFeatures, cls: Sequence[str]) -> float:
    from edgevit.predict.costmodel import term_work

    return term_work(f, cls)


def fit_tables(ts: Sequence[Table], structure: str) -> tuple[dict[str, CostModel], dict[str, Any]]:
    """fp32 models of all tables with transfer (steps 2-3) for one structure; also the transfer facts."""
    terms = STRUCTURES[structure]
    raw = {predictor_key(t.board, "ncnn", t.threads, t.precision):
           fit_model(t.rows, device=t.board, runtime="ncnn", threads=t.threads, precision=t.precision,
                     structure=structure, source=t.source) for t in ts}
    ratios = _ratios(raw, ts)
    errors = transfer_errors(ts, ratios, terms)
    models = {}
    for t in ts:
        transfer = transfer_for(t, ratios, ts)
        models[predictor_key(t.board, "ncnn", t.threads, t.precision)] = fit_model(
            t.rows, device=t.board, runtime="ncnn", threads=t.threads, precision=t.precision, structure=structure,
            transfer=transfer, source=t.source)
    facts = {"ratios": {term: {k: round(v, 4) for k, v in per.items()} for term, per in ratios.items()},
             "errors": {term: [round(e, 4) for e in es] for term, es in errors.items()}}
    return models, facts


def pooled(models: Mapping[str, CostModel]) -> dict[str, float]:
    """LOO statistics over every network of every table, and the share of tables meeting the goals."""
    errs = {f"{k}:{n}": e for k, m in models.items() for n, e in m.loo.errors.items()}
    s = LooStats(errs).summary()
    ok_med = [m.loo.median_abs <= 0.10 for m in models.values()]
    ok_w20 = [m.loo.within(0.20) >= 0.80 for m in models.values()]
    return {**s, "tables": len(models), "tables_median_le_10": round(sum(ok_med) / len(ok_med), 4),
            "tables_within20_ge_80": round(sum(ok_w20) / len(ok_w20), 4)}


def select_structure(ts: Sequence[Table], candidates: Sequence[str] | None = None,
                     log: Callable[[str], None] | None = None) -> tuple[str, dict[str, dict[str, float]]]:
    """The candidate structure with the largest pooled share of LOO errors within ±20 % (the goal that
    outliers cannot hide behind a good median), ties broken by the lower pooled median error."""
    scores = {}
    fp32 = [t for t in ts if t.precision == "fp32"]
    for name in candidates or list(STRUCTURES):
        models, _ = fit_tables(fp32, name)
        scores[name] = pooled(models)
        if log:
            log(f"structure {name}: pooled LOO median {scores[name]['median_abs']:.1%}, "
                f"within ±20% {scores[name]['within_20']:.0%}")
    best = min(scores, key=lambda k: (-round(scores[k]["within_20"], 3), scores[k]["median_abs"]))
    return best, scores


def fit_int8(ts: Sequence[Table], fp32: Mapping[str, CostModel], structure: str) -> dict[str, CostModel]:
    out = {}
    for t in ts:
        if t.precision != "int8":
            continue
        base = fp32.get(predictor_key(t.board, "ncnn", t.threads, "fp32"))
        if base is None:
            continue
        out[predictor_key(t.board, "ncnn", t.threads, "int8")] = fit_model(
            t.rows, device=t.board, runtime="ncnn", threads=t.threads, precision="int8", structure=structure,
            terms=INT8_STRUCTURES[structure], base=base, source=t.source)
    return out


def select_int8_structure(ts: Sequence[Table], fp32: Mapping[str, CostModel],
                          log: Callable[[str], None] | None = None) -> tuple[str, dict[str, dict[str, float]]]:
    """Same criterion as `select_structure`, over the int8 candidates."""
    scores = {}
    for name in INT8_STRUCTURES:
        scores[name] = pooled(fit_int8(ts, fp32, name))
        if log:
            log(f"int8 structure {name}: pooled LOO median {scores[name]['median_abs']:.1%}, "
                f"within ±20% {scores[name]['within_20']:.0%}")
    best = min(scores, key=lambda k: (-round(scores[k]["within_20"], 3), scores[k]["median_abs"]))
    return best, scores


def refit(*, structure: str | None = None, int8_structure: str | None = None,
          log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """All board predictors as one JSON document (what `predictors.json` holds)."""
    data = benchmark_data()
    ts = tables(data)
    if structure is None:
        structure, scores = select_structure(ts, log=log)
    else:
        scores = {}
    fp32_tables = [t for t in ts if t.precision == "fp32"]
    fp32, facts = fit_tables(fp32_tables, structure)
    if int8_structure is None:
        int8_structure, int8_scores = select_int8_structure(ts, fp32, log=log)
    else:
        int8_scores = {}
    int8 = fit_int8(ts, fp32, int8_structure)
    if log:
        log(f"structure {structure}: {len(fp32)} fp32 and {len(int8)} int8 predictors")
    return {
        "schema": PREDICTORS_SCHEMA,
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {"file": "ncnn_benchmark.json", **data["source"]},
        "latency_field": LATENCY_FIELD,
        "structure": structure,
        "structure_selection": scores,
        "int8_structure": int8_structure,
        "int8_structure_selection": int8_scores,
        "transfer": facts,
        "pooled_loo": {"fp32": pooled(fp32), "int8": pooled(int8) if int8 else {}},
        "predictors": {k: m.to_dict() for k, m in {**fp32, **int8}.items()},
    }


def write_predictors(doc: Mapping[str, Any], path: Any = None) -> Any:
    from edgevit.predict.data import PREDICTORS_FILE

    return write_json(path or PREDICTORS_FILE, dict(doc))


def default_structure() -> str:
    return DEFAULT_STRUCTURE
