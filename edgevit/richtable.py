"""Terminal tables that fit 80 columns and never cut a number.

Numbers sit in no-wrap columns as wide as their widest cell; only text columns (names, notes) may fold
onto a second line. A light box spends 3 characters per column instead of Rich's default borders.
Commands show their essential columns by default and every column with `--wide`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table


@dataclass(frozen=True)
class Column:
    """One column: its header, whether it holds numbers (right-aligned, never wrapped), and whether it is
    shown only with --wide."""

    header: str
    numeric: bool = True
    wide: bool = False
    wrap: bool = True  # text only: False keeps identifiers (names, case ids) whole on one line


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, title: str = "", caption: str = "",
          wide: bool = False, styles: Sequence[str | None] | None = None) -> Table:
    """A Rich table of `rows` (cells already formatted) with the columns shown at this width setting."""
    keep = [i for i, c in enumerate(columns) if wide or not c.wide]
    out = Table(title=title or None, caption=caption or None, box=box.SIMPLE_HEAD, header_style="bold",
                pad_edge=False, show_edge=False)
    for i in keep:
        col = columns[i]
        cells = [str(r[i]) for r in rows]
        widest_word = max((len(w) for w in col.header.split()), default=1)
        whole = col.numeric or not col.wrap
        width = max([len(c) for c in cells] + [widest_word]) if whole else None
        out.add_column(col.header, justify="right" if col.numeric else "left", no_wrap=whole,
                       min_width=width, overflow="fold")
    for n, r in enumerate(rows):
        out.add_row(*(str(r[i]) for i in keep), style=(styles[n] if styles else None))
    return out


def fmt(value: Any, spec: str = ".2f") -> str:
    """A number for a table cell ('—' for a missing one)."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)
