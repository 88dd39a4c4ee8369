"""`edgevit doctor`: prints `edgevit.doctor.collect()` as tables (or JSON)."""
from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgevit.cli.app import app, console


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


@app.command("doctor")
def doctor_cmd(
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
) -> None:
    """List every export target and runtime: available or not, version, and why not with the fix."""
    from edgevit.doctor import collect

    data = collect()
    if json_out:
        typer.echo(json.dumps(data, indent=2))
        return
    h = data["host"]
    console.print(
        f"python {h['python']} on {h['platform']}/{h['machine']}, torch {h.get('torch') or 'missing'}"
        + (f", XNNPACK {'yes' if h.get('xnnpack') else 'no'}, CUDA {'yes' if h.get('cuda') else 'no'}, "
           f"quantized engines {', '.join(h.get('quantized_engines', []))}" if h.get("torch") else ""),
        highlight=False,
    )
    table = Table(title="export targets", header_style="bold")
    for col in ("target", "export", "version", "precisions", "verify here", "why not / fix"):
        table.add_column(col, overflow="fold")
    for r in data["targets"]:
        precisions = ", ".join(p + ("*" if p == r["default_precision"] else "") for p in r["precisions"])
        table.add_row(r["target"], _mark(r["available"]), escape(r["version"] or "—"), precisions,
                      escape(r["verify"]), escape(r["reason"] or ""))
    console.print(table)
    table = Table(title="runtimes", header_style="bold")
    for col in ("runtime", "available", "version", "why not / fix"):
        table.add_column(col, overflow="fold")
    for r in data["runtimes"]:
        table.add_row(escape(r["runtime"]), _mark(r["available"]), escape(r["version"] or "—"),
                      escape(r["reason"] or ""))
    console.print(table)
    for r in data["runtimes"]:
        for key, value in (r.get("details") or {}).items():
            console.print(f"{r['runtime']} {key}: {value}", highlight=False)
    for plugin, why in data["plugin_errors"].items():
        console.print(f"[red]plugin {escape(plugin)} failed to load:[/] {escape(why)}")
    console.print("* default precision", style="dim")
