"""`edgevit targets`: the targets table (the README support matrix is this command's Markdown)."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from edgevit.cli.app import app, console


@app.command("targets")
def targets_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README support matrix.")] = False,
) -> None:
    """List export targets: artifact suffix, precisions, what int8 means, runtime and pip extra."""
    from edgevit.exporters.matrix import support_matrix_markdown
    from edgevit.exporters.targets import targets

    if markdown:
        typer.echo(support_matrix_markdown())
        return
    table = Table(title="export targets", header_style="bold")
    for col in ("target", "artifact", "precisions", "int8 means", "runtime", "extra", "needs"):
        table.add_column(col)
    for t in sorted(targets().values(), key=lambda t: t.key):
        table.add_row(t.key, t.suffix, ", ".join(t.precisions), t.int8 or "—", t.runtime or "—", t.extra,
                      t.requirement or "—")
    console.print(table)
