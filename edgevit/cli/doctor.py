"""`edgevit doctor`: every export target and runtime on this machine, available or not, its version,
and why not with the fix. Probes never import a missing package and never crash the command."""
from __future__ import annotations

import json
import platform
import sys
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
        details = _details(r) if avail.available else {}
        runtime_rows.append({"runtime": r.key, "title": r.title, "available": avail.available,
                             "version": avail.version, "reason": avail.reason, "extra": r.extra, "details": details})
    return {"host": _host(), "targets": target_rows, "runtimes": runtime_rows}


def _details(spec: Any) -> dict[str, str]:
    """A runtime's own facts (`RuntimeSpec.describe`, e.g. its devices); a failing hook is reported, not raised."""
    if spec.describe is None:
        return {}
    try:
        return {str(k): str(v) for k, v in spec.describe().items()}
    except Exception as exc:  # noqa: BLE001 - doctor must always finish
        return {"error": f"{type(exc).__name__}: {exc}"}


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
) -> None:
    """List every export target and runtime: available or not, version, and why not with the fix."""
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
    for col in ("runtime", "available", "version", "why not / fix, or details"):
        table.add_column(col, overflow="fold")
    for r in data["runtimes"]:
        details = "; ".join(f"{k}: {v}" for k, v in r["details"].items())
        table.add_row(escape(r["runtime"]), _mark(r["available"]), escape(r["version"] or "—"),
                      escape(r["reason"] or details))
    console.print(table)
    console.print("* default precision", style="dim")
