"""`edgevit bench` (measure under a device profile) and `edgevit devices` (list the profiles)."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from edgevit.cli.app import app, console, err_console, parse_key_values


@app.command("bench")
def bench_cmd(
    inputs: Annotated[list[str] | None, typer.Argument(
        metavar="MODEL|ARTIFACT...", help="Model names (exported on the fly, cached) and/or artifacts of any "
        "target with a runtime here.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", metavar="PROFILE", help="Device profile name or "
                                               "YAML file (edgevit devices); default host, or the suite's.")] = None,
    suite: Annotated[str | None, typer.Option(metavar="SUITE", help="Suite YAML or a shipped suite's name "
                                              "(paper, smoke).")] = None,
    runtime: Annotated[str | None, typer.Option(metavar="NAME", help="Runtime for model names (default: the "
                                                "profile's).")] = None,
    precision: Annotated[list[str] | None, typer.Option("--precision", "-p", metavar="P", help="fp32, fp16, int8; "
                                                        "repeatable (default: the profile's).")] = None,
    threads: Annotated[int | None, typer.Option(metavar="N", help="Threads (default: the profile's).")] = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", metavar="N", help="Batch size; "
                                                    "repeatable.")] = None,
    img_size: Annotated[int | None, typer.Option(metavar="PX", help="Input size for model names (default: the "
                                                 "model's).")] = None,
    warmup: Annotated[int | None, typer.Option(metavar="N", help="Warm-up runs, at least (and 0.2 s; default 5 or "
                                               "the suite's).")] = None,
    runs: Annotated[int | None, typer.Option(metavar="N", help="Timed runs, at least (default 50, 10 with "
                                             "--min-seconds, or the suite's).")] = None,
    min_seconds: Annotated[float | None, typer.Option(metavar="S", help="Timed phase lasts at least this "
                                                      "long.")] = None,
    strict: Annotated[bool, typer.Option("--strict", metavar="", help="Refuse to run a profile's settings on "
                                         "another machine.")] = False,
    reference: Annotated[bool, typer.Option("--reference", metavar="", help="Add the @reference case (the gate "
                                            "normalises by it across machines).")] = False,
    json_out: Annotated[str | None, typer.Option("--json", metavar="PATH", help="Write JSON (raw samples); file or "
                                                 "directory.")] = None,
    csv_out: Annotated[str | None, typer.Option("--csv", metavar="PATH", help="Write CSV; file or "
                                                "directory.")] = None,
    md_out: Annotated[str | None, typer.Option("--markdown", metavar="PATH", help="Write Markdown; file or "
                                               "directory.")] = None,
    plot_out: Annotated[str | None, typer.Option("--plot", metavar="PATH", help="Latency vs GMACs/params PNG; "
                                                 "file or directory.")] = None,
    runtime_option: Annotated[list[str] | None, typer.Option(
        "--runtime-option", "-O", metavar="KEY=VALUE", help="Runner option, repeatable: ncnn powersave=0|1|2 "
        "(all, little, big cores), packing=true|false; onnxruntime optimization=all|extended|basic|disable.")] = None,
) -> None:
    """Measure latency (median, p90, p99, spread), load time, first inference and peak RSS, one fresh
    process per case, under a device profile."""
    from edgevit.bench import tables
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import protocol_from
    from edgevit.errors import BenchFailure, ConfigError

    overrides = {"warmup": warmup, "runs": runs, "min_seconds": min_seconds}
    options = parse_key_values(runtime_option, "--runtime-option")
    if suite is not None:
        if inputs:
            raise ConfigError("give a --suite or inputs, not both")
        from edgevit.bench.suites import run_suite

        res = run_suite(suite, profile=device, threads=threads, runtime=runtime, options=options,
                        protocol=overrides, strict=strict, progress=True)
    else:
        p = plan(inputs or [], profile=device or "host", runtime=runtime, precision=precision or None,
                 threads=threads, batch=batch or None, img_size=img_size, strict=strict, reference=reference,
                 options=options)
        _warn(p.warnings)
        res = run_plan(p, protocol_from(**overrides), progress=True)
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
        raise BenchFailure(f"{len(failed)} of {len(res.cases)} case(s) failed: "
                           + "; ".join(f"{c.case.id}: {c.error}" for c in failed))


def _warn(warnings: list[str]) -> None:
    if not warnings:
        return
    from rich.panel import Panel

    err_console.print(Panel("\n".join(warnings), title="[bold yellow]not the profile's device / settings adjusted",
                            border_style="yellow"))


@app.command("devices")
def devices_cmd(
    name: Annotated[str | None, typer.Argument(metavar="PROFILE", help="Show one profile in full.")] = None,
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
) -> None:
    """List the device profiles: architecture, cores/threads, frequency, memory, runtime, precisions."""
    from rich.table import Table

    from edgevit.bench.api import available_runtimes
    from edgevit.bench.profiles import describe_profile, detect_host, host_mismatches, list_profiles, load_profile

    host = detect_host()
    profiles = [load_profile(name)] if name else list_profiles()
    if json_out:
        typer.echo(json.dumps([p.to_dict() | {"this_machine": not host_mismatches(p, host)} for p in profiles],
                              indent=2))
        return
    if name:
        for line in describe_profile(profiles[0], host):
            console.print(line, highlight=False, soft_wrap=True)
        return
    avail = available_runtimes()
    table = Table(title=f"device profiles (this machine: {host.cpu} x{host.cores}, {host.arch})", header_style="bold")
    for col in ("name", "arch", "cores/threads", "GHz", "runtime", "precisions", "refs", "gate"):
        table.add_column(col, justify="right" if col in ("GHz", "refs") else "left")
    for p in profiles:
        rt = p.runtime if avail.get(p.runtime) == "" else f"{p.runtime} [dim](not here)[/]"
        table.add_row(p.name, p.arch, f"{p.cores}/{p.threads}", str(p.frequency_ghz or "—"), rt,
                      ",".join(p.precisions), str(len(p.references)),
                      f"{p.gate.rel_tolerance:.0%} + {p.gate.abs_floor_ms:g} ms")
    console.print(table)
