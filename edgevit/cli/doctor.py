"""`edgevit doctor`: prints `edgevit.doctor.collect()` as tables (or JSON)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from edgevit.cli.app import app, console
from edgevit.richtable import Column, show, table


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


@app.command("doctor")
def doctor_cmd(
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
    on: Annotated[str | None, typer.Option("--on", metavar="HOST", help="Inspect a board over SSH instead: what "
                                           "it has for `edgevit bench --on` and what to install there.")] = None,
    ssh_config: Annotated[Path | None, typer.Option(metavar="FILE", help="ssh config file for --on "
                                                    "(ssh -F).")] = None,
    remote_python: Annotated[str, typer.Option(metavar="PATH", help="The board's python for --on.")] = "python3",
) -> None:
    """List every export target and runtime: available or not, version, and why not with the fix."""
    from edgevit.doctor import collect

    if on is not None:
        _doctor_board(on, ssh_config, remote_python, json_out)
        return
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
    cols = [Column(h, numeric=False) for h in ("target", "export", "version", "precisions", "runs here")]
    rows = [[r["target"], _mark(r["available"]), escape(r["version"] or "—"),
             ",".join(p + ("*" if p == r["default_precision"] else "") for p in r["precisions"]),
             _mark(r["verify"] == "runs the artifact")] for r in data["targets"]]
    show(console, table(cols, rows, title="export targets", caption="* default precision"))
    cols = [Column(h, numeric=False) for h in ("runtime", "available", "version")]
    rows = [[escape(r["runtime"]), _mark(r["available"]), escape(r["version"] or "—")] for r in data["runtimes"]]
    show(console, table(cols, rows, title="runtimes"))
    for kind, key in (("target", "targets"), ("runtime", "runtimes")):  # the fixes, one line each, never cut
        for r in data[key]:
            if not r["available"]:
                console.print(f"{kind} {r[kind]}: {escape(r['reason'])}", soft_wrap=True, highlight=False)
    for r in data["runtimes"]:
        for key, value in (r.get("details") or {}).items():
            console.print(f"{r['runtime']} {key}: {value}", highlight=False)
    for plugin, why in data["plugin_errors"].items():
        console.print(f"[red]plugin {escape(plugin)} failed to load:[/] {escape(why)}")


def _doctor_board(on: str, ssh_config: Path | None, python: str, json_out: bool) -> None:
    """`doctor --on HOST`: the board's python, numpy and runtimes, and the commands that add what is missing."""
    from edgevit.bench.remote import SshTarget, inspect_board

    data = inspect_board(SshTarget(on, ssh_config=ssh_config, python=python))
    if json_out:
        typer.echo(json.dumps(data, indent=2))
        return
    f = data["facts"]
    emulated = " [bold yellow](EMULATED: qemu-user; correctness only, no device timing)[/]" if data["emulated"] else ""
    console.print(f"board {escape(on)}: {escape(str(f.get('cpu')))} x{f.get('cores')}, {f.get('arch')}, "
                  f"{f.get('memory_gb')} GB, {escape(str(f.get('os')))}{emulated}", highlight=False)
    console.print(f"python {f.get('python')} at {escape(data['python'])}; numpy {f.get('numpy') or '[red]missing[/]'}; "
                  f"edgevit bundle {f.get('edgevit')}", highlight=False)
    gov = ", ".join(f"{k} {v}" for k, v in (f.get("governor") or {}).items()) or "not exposed"
    temps = ", ".join(f"{k} {v} °C" for k, v in (f.get("thermal_c") or {}).items()) or "none"
    console.print(f"cpufreq governor: {escape(gov)}; thermal zones: {escape(temps)}", highlight=False)
    table = Table(title=f"runtimes on {on}", header_style="bold")
    for col in ("runtime", "available", "version", "why not"):
        table.add_column(col, overflow="fold")
    runtimes = f.get("runtimes")
    if runtimes is None:
        console.print(f"[red]the runners cannot load there:[/] {escape(str(f.get('runtimes_error')))}")
    for key, r in (runtimes or {}).items():
        table.add_row(escape(key), _mark(r["available"]), escape(r["version"] or "—"),
                      escape(r["reason"].split(":")[0] if r["reason"] else ""))
    if runtimes is not None:
        console.print(table)
    console.print("matching device profiles: " + (", ".join(data["profiles"]) or "none (bench labels results "
                  "with the board's own facts)"), highlight=False)
    if data["install"]:
        console.print("[bold]to install on the board:[/]")
        for cmd in data["install"]:
            console.print(f"  {escape(cmd)}", highlight=False, soft_wrap=True)
    else:
        console.print("[green]ready:[/] numpy and a runtime for its architecture are installed")
