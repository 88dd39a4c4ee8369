"""`edgevit bench` (measure under a device profile) and `edgevit devices` (list the profiles)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console, parse_key_values


@app.command("bench")
def bench_cmd(
    inputs: Annotated[list[str] | None, typer.Argument(help="Model names (exported on the fly, cached) and/or "
                                                       "artifact files of any target with a runtime here.")] = None,
    device: Annotated[str, typer.Option("--device", "-d", help="Device profile name or YAML file "
                                        "(edgevit devices).")] = "host",
    suite: Annotated[Path | None, typer.Option(help="Suite YAML: models x runtimes x precisions.")] = None,
    runtime: Annotated[str | None, typer.Option(help="Runtime for model names (default: the profile's).")] = None,
    precision: Annotated[list[str] | None, typer.Option("--precision", "-p", help="fp32, fp16, int8; "
                                                        "repeatable (default: the profile's).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="Threads (default: the profile's).")] = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="Batch size; repeatable.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size for model names (default: the model's).")] = None,
    warmup: Annotated[int, typer.Option(help="Warm-up runs, at least (and 0.2 s).")] = 5,
    runs: Annotated[int | None, typer.Option(help="Timed runs, at least (default 50; 10 with --min-seconds).")] = None,
    min_seconds: Annotated[float, typer.Option(help="Timed phase lasts at least this long.")] = 0.0,
    strict: Annotated[bool, typer.Option(help="Refuse to run a profile's settings on another machine.")] = False,
    reference: Annotated[bool, typer.Option(help="Add the @reference case (the gate normalises by it across "
                                            "machines).")] = False,
    json_out: Annotated[str | None, typer.Option("--json", help="Write JSON (raw samples); file or directory.")] = None,
    csv_out: Annotated[str | None, typer.Option("--csv", help="Write CSV; file or directory.")] = None,
    md_out: Annotated[str | None, typer.Option("--markdown", help="Write Markdown; file or directory.")] = None,
    plot_out: Annotated[str | None, typer.Option("--plot", help="Latency vs GMACs/params PNG; file or "
                                                  "directory.")] = None,
    runtime_option: Annotated[list[str] | None, typer.Option(
        "--runtime-option", "-O", help="KEY=VALUE for the runner, repeatable: ncnn powersave=0|1|2 (all, little, "
        "big cores), packing=true|false; onnxruntime optimization=all|extended|basic|disable.")] = None,
) -> None:
    """Measure latency (median, p90, p99, spread), load time, first inference and peak RSS, one fresh
    process per case, under a device profile."""
    from edgevit.bench import tables
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import Protocol
    from edgevit.errors import ConfigError

    n_runs = runs if runs is not None else (10 if min_seconds > 0 else 50)
    protocol = Protocol(warmup=warmup, runs=n_runs, min_seconds=min_seconds)
    log = lambda msg: err_console.print(f"[dim]{msg}[/]")  # noqa: E731
    options = parse_key_values(runtime_option, "--runtime-option")
    if suite is not None:
        if inputs:
            raise ConfigError("give a --suite or inputs, not both")
        from edgevit.bench.suites import load_suite, run_suite

        s = load_suite(suite)
        explicit = runs is not None or min_seconds > 0 or warmup != 5
        res = run_suite(suite, profile=device if device != "host" else None, threads=threads, runtime=runtime,
                        options=options,
                        protocol=protocol if explicit else s.protocol, strict=strict, progress=True, log=log)
    else:
        p = plan(inputs or [], profile=device, runtime=runtime, precision=precision or None, threads=threads,
                 batch=batch or None, img_size=img_size, strict=strict, reference=reference, log=log,
                 options=options)
        _warn(p.warnings)
        res = run_plan(p, protocol, progress=True)
    if suite is not None:
        _warn(res.setup["warnings"])
    console.print(tables.bench_table(res))
    for option, writer in ((json_out, tables.write_json), (csv_out, tables.write_csv),
                           (md_out, tables.write_markdown)):
        if option is not None:
            err_console.print(f"wrote {writer(res, option)}")
    if plot_out is not None:
        from edgevit.bench.plots import plot

        err_console.print(f"wrote {plot(res, plot_out)}")
    failed = [c for c in res.cases if not c.ok]
    if failed:
        err_console.print(f"[bold red]{len(failed)} case(s) failed:[/] " + "; ".join(f"{c.case.id}: {c.error}" for c in failed))
        raise typer.Exit(1)


def _predicts(p: object, what: str) -> str:
    board = getattr(p, "predict_board", "")
    if what == "none":
        return "[dim]run edgevit calibrate[/]" if getattr(p, "detected", False) else "—"
    return f"{board or 'host'}: {what}"


def _warn(warnings: list[str]) -> None:
    if not warnings:
        return
    from rich.panel import Panel

    err_console.print(Panel("\n".join(warnings), title="[bold yellow]not the profile's device / settings adjusted",
                            border_style="yellow"))


@app.command("devices")
def devices_cmd(
    name: Annotated[str | None, typer.Argument(help="Show one profile in full.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the device profiles: architecture, cores/threads, frequency, memory, runtime, precisions."""
    from rich.table import Table

    from edgevit.bench.api import _available_runtimes
    from edgevit.bench.profiles import detect_host, host_mismatches, list_profiles, load_profile

    from edgevit.predict.api import available, describe_available

    host = detect_host()
    profiles = [load_profile(name)] if name else list_profiles()
    if json_out:
        typer.echo(json.dumps([p.to_dict() | {"this_machine": not host_mismatches(p, host),
                                              "predictors": [asdict(r) for r in available(p)]} for p in profiles],
                              indent=2))
        return
    avail = _available_runtimes()
    if name:
        p = profiles[0]
        console.print(f"[bold]{p.name}[/]: {p.title}")
        for key in ("arch", "cpu", "isa", "cores", "threads", "frequency_ghz", "memory_gb", "gpu", "runtime",
                    "fallback_runtimes", "precisions", "batch", "gate", "path"):
            console.print(f"  {key}: {getattr(p, key)}", highlight=False)
        for r in p.references:
            console.print(f"  reference: {r.model} {r.latency_ms:g} ms (batch {r.batch}, {r.threads or '?'} threads)"
                          + (f", {r.memory_mb:g} MB" if r.memory_mb else "") + f" — {r.source}", highlight=False)
        console.print(f"  notes: {p.notes}", highlight=False)
        mism = host_mismatches(p, host)
        console.print(f"  this machine: {'yes' if not mism else 'no (' + '; '.join(mism) + ')'}", highlight=False)
        for r in available(p):
            console.print(f"  predictor: {r.key} — {r.networks} networks, LOO median error {r.loo_median:.0%} "
                          f"({r.origin})", highlight=False)
        return
    table = Table(title=f"device profiles (this machine: {host.cpu} x{host.cores}, {host.arch})", header_style="bold")
    for col in ("name", "arch", "cores/threads", "GHz", "memory GB", "runtime", "precisions", "batch",
                "published refs", "gate", "predictor data"):
        table.add_column(col, justify="right" if col in ("GHz", "memory GB", "published refs") else "left")
    for p in profiles:
        rt = p.runtime if avail.get(p.runtime) == "" else f"{p.runtime} [dim](not here)[/]"
        table.add_row(p.name, p.arch, f"{p.cores}/{p.threads}", str(p.frequency_ghz or "—"),
                      str(p.memory_gb or "—"), rt, ",".join(p.precisions), ",".join(map(str, p.batch)),
                      str(len(p.references)), f"{p.gate.rel_tolerance:.0%} + {p.gate.abs_floor_ms:g} ms",
                      _predicts(p, describe_available(p)))
    console.print(table)
