"""`edgevit doctor`: every export target and runtime on this machine, available or not, its version,
and why not with the fix. Probes never import a missing package and never crash the command."""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from edgevit.cli.app import app, console


def _dist_version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version({"onnx_graphsurgeon": "onnx-graphsurgeon"}.get(module, module))
    except PackageNotFoundError:
        return ""


def _safe(probe: Any) -> Any:
    """A probe that raises is a bug in the probe; report it as unavailable rather than crash doctor."""
    from edgevit.runtimes.base import Availability

    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - doctor must always finish
        return Availability(False, reason=f"probe failed: {type(exc).__name__}: {exc}")


def collect() -> dict[str, Any]:
    """What doctor reports, as data (the table and `--json` both come from this)."""
    from edgevit.exporters.targets import target_availability, targets
    from edgevit.runtimes.base import runtimes

    rts = runtimes()
    target_rows = []
    for t in targets().values():
        avail = _safe(lambda t=t: target_availability(t))
        rt = rts.get(t.runtime)
        rt_avail = _safe(rt.probe) if rt else None
        target_rows.append({
            "target": t.key,
            "title": t.title,
            "available": avail.available,
            "version": avail.version or (_dist_version(t.requires[0]) if t.requires else ""),
            "reason": avail.reason,
            "precisions": list(t.precisions),
            "default_precision": t.default_precision,
            "int8": t.int8,
            "suffix": t.suffix,
            "extra": t.extra,
            "requirement": t.requirement,
            "runtime": t.runtime,
            "verify": ("runs the artifact" if rt_avail and rt_avail.available
                       else f"not run here ({t.runtime} unavailable)" if rt_avail else "no runtime"),
        })
    runtime_rows = []
    for r in rts.values():
        avail = _safe(r.probe)
        runtime_rows.append({"runtime": r.key, "title": r.title, "available": avail.available,
                             "version": avail.version, "reason": avail.reason, "extra": r.extra})
    return {"host": _host(), "targets": target_rows, "runtimes": runtime_rows}


def _host() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": sys.platform,
                            "machine": platform.machine()}
    try:
        import torch

        from edgevit.exporters.torchscript import xnnpack_available

        info["torch"] = torch.__version__
        info["xnnpack"] = xnnpack_available()
        info["quantized_engines"] = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        info["cuda"] = bool(torch.cuda.is_available())
    except ImportError:
        info["torch"] = ""
    return info


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]no[/]"


@app.command("doctor")
def doctor_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    on: Annotated[str | None, typer.Option("--on", help="Inspect a board over SSH instead: what it has for "
                                           "`edgevit bench --on` and what to install there.")] = None,
    ssh_config: Annotated[Path | None, typer.Option(help="ssh config file for --on (ssh -F).")] = None,
    remote_python: Annotated[str, typer.Option(help="The board's python for --on.")] = "python3",
) -> None:
    """List every export target and runtime: available or not, version, and why not with the fix."""
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
    console.print("* default precision", style="dim")


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
