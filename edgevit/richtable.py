"""Terminal tables that fit 80 columns and never cut a number.

Number columns never wrap (their headers are stacked a word per line); text columns wrap at spaces.
`show` prints a table that cannot fit the terminal at its natural width instead of squeezing it, so a
number is never broken or cut. A light box spends 3 characters per column instead of Rich's default borders.
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
        # numbers never wrap (their header is stacked word by word instead); text wraps at spaces
        header = col.header.replace(" ", "\n") if col.numeric else col.header
        out.add_column(header, justify="right" if col.numeric else "left", no_wrap=col.numeric or not col.wrap,
                       overflow="fold")
    for n, r in enumerate(rows):
        out.add_row(*(str(r[i]) for i in keep), style=(styles[n] if styles else None))
    return out


def show(console: Any, renderable: Table) -> None:
    """Print a table at the console's width when it fits there (wrapping text at spaces); a table that
    cannot fit even so (`--wide` on a narrow terminal) is printed at its natural width instead, so no
    number is ever broken or cut."""
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update(max_width=100_000), renderable)
    if need.minimum <= console.width:
        console.print(renderable)
        return
    width = console.width
    console.width = need.maximum  # Rich clamps print(width=...) to the console's: widen it for this table
    try:
        console.print(renderable)
    finally:
        console.width = width


def fmt(value: Any, spec: str = ".2f") -> str:
    """A number for a table cell ('—' for a missing one)."""
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, spec)
