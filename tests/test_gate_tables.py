"""The gate's terminal tables (paired and stored modes) fit 80 columns with every number whole, and the
note of a case that is not ok (what to do when inconclusive) is printed under the table."""
from __future__ import annotations

from rich.console import Console

from edgevit.bench.paired_gate import PairedCase, PairedReport
from edgevit.bench.paired_report import paired_table
from edgevit.bench.regress import CaseComparison, RegressReport
from edgevit.bench.tables import case_notes, regress_table
from edgevit.richtable import show

LONG = "fcaformer_l0/onnxruntime/int8/b32/t2"


def _render(table) -> str:
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    show(console, table)
    return console.export_text()


def _fits(text: str, *numbers: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text, text
    for n in numbers:
        assert n in text, (n, text)


def test_paired_table_fits_80_columns():
    cases = [PairedCase(LONG, "inconclusive", 1234.56, 1301.22, 1.054, 0.998, 1.123, 24,
                        note="interval reaches 1; after 24 pairs. Rerun with more pairs (--max-pairs)"),
             PairedCase("cas_vit_xs/onnxruntime/fp32/b1/t2", "regression", 15.82, 17.61, 1.113, 1.071, 1.152, 8)]
    rep = PairedReport(cases, 0.05, 0.2, 0.95, "wilcoxon", "median", "base main (0123456789)",
                       "head (abcdef0 + local changes)", "host", "AMD EPYC x2", {})
    text = _render(paired_table(rep))
    _fits(text, "1234.56", "1301.22", "1.00-1.12", "inconclusive", "fcaformer_l0/int8/b32 ")
    assert case_notes(rep.cases) == [f"{LONG}: inconclusive: interval reaches 1; after 24 pairs. Rerun with more "
                                     "pairs (--max-pairs)"]


def test_stored_table_fits_80_columns():
    cases = [CaseComparison(LONG, "inconclusive", 1234.56, 1401.98, 1.136, 1.021, 1.254, p_slower=0.81,
                            note="measured on a busy machine"),
             CaseComparison("@reference", "ok", 20.11, 20.31, 1.01, 0.99, 1.03, p_slower=0.52)]
    rep = RegressReport(cases, 0.5, 1.0, 0.95, True, 1.01, "AMD EPYC x2", "AMD EPYC x2", "host")
    text = _render(regress_table(rep))
    _fits(text, "1234.56", "1401.98", "1.02-1.25", "inconclusive")
    wide = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    show(wide, regress_table(rep, wide=True))
    assert "0.81" in wide.export_text()
