"""`edgevit targets`: the targets table (the README support matrix is this command's Markdown)."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from edgevit.cli.app import app, console


@app.command("targets")
def targets_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", metavar="", help="Print the README support matrix.")] = False,
) -> None:
    """List export targets: artifact suffix, precisions, what int8 means, runtime and pip extra."""
    from edgevit.backends import backends
    from edgevit.backends.matrix import support_matrix_markdown

    if markdown:
        typer.echo(support_matrix_markdown())
        return
    table = Table(title="export targets", header_style="bold")
    for col in ("target", "artifact", "precisions", "int8 means", "runtime", "extra", "needs"):
        table.add_column(col)
    for b in backends().values():
        table.add_row(b.key, b.suffix, ", ".join(b.precisions), b.int8 or "—", b.runtime.key if b.runtime else "—",
                      b.extra, b.requirement or "—")
    console.print(table)
