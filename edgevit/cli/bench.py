"""`edgevit bench` (measure under a device profile) and `edgevit devices` (list the profiles)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from edgevit.cli.app import app, console, err_console, parse_key_values
from edgevit.richtable import show


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
                                                "profile's); auto measures the profile's candidate runtimes "
                                                "and names the fastest within the accuracy budget.")] = None,
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
    on: Annotated[str | None, typer.Option("--on", metavar="HOST", help="Run on a board over SSH: user@host, "
                                           "host:port or an ~/.ssh/config alias (docs/boards.md).")] = None,
    fleet: Annotated[Path | None, typer.Option(metavar="FILE", help="Inventory YAML of boards: each runs its own "
                                               "queue, boards in parallel, results merged per device.")] = None,
    ssh_config: Annotated[Path | None, typer.Option(metavar="FILE", help="ssh config file for --on/--fleet (ssh -F; "
                                                    "default ~/.ssh/config).")] = None,
    remote_python: Annotated[str, typer.Option(metavar="PATH", help="The board's python for --on (name or "
                                               "path).")] = "python3",
    cooldown: Annotated[float, typer.Option(metavar="S", help="Seconds the board idles before each case after the "
                                            "first (--on).")] = 0.0,
    timeout: Annotated[float, typer.Option(metavar="S", help="Seconds one case may take before it is "
                                           "killed.")] = 900.0,
    wide: Annotated[bool, typer.Option("--wide", metavar="", help="Every column (p99, mean ± std, min, runs, "
                                       "load time, GMACs, ...); the default fits 80 columns.")] = False,
) -> None:
    """Measure latency (median, p90, p99, spread), load time, first inference and peak RSS, one fresh
    process per case, under a device profile; here, on a board (--on) or on a fleet (--fleet)."""
    from edgevit.bench import outputs
    from edgevit.errors import ConfigError

    overrides = {"warmup": warmup, "runs": runs, "min_seconds": min_seconds}
    options = parse_key_values(runtime_option, "--runtime-option")
    outputs.check(outputs.Outputs(json_out, csv_out, md_out, plot_out))  # before anything is measured
    if suite is not None and inputs:
        raise ConfigError("give a --suite or inputs, not both")
    if cooldown < 0 or timeout <= 0:
        raise ConfigError(f"--cooldown must be >= 0 and --timeout > 0 (got {cooldown:g}, {timeout:g})")
    if fleet is not None:
        if on or device or options or threads or runtime:
            raise ConfigError("--fleet takes profiles, threads and runner options from the inventory: drop "
                              "--on/--device/--threads/--runtime/-O")
        _fleet(fleet, inputs or [], suite, overrides, precision, strict, reference, timeout, json_out, csv_out,
               md_out, plot_out, ssh_config, wide)
        return
    if on is None:
        res = _bench(inputs, device, suite, runtime, precision, threads, batch, img_size, overrides, strict,
                     reference, options, timeout, None)
    else:
        from edgevit.bench.remote import RemoteExecutor, SshTarget

        target = SshTarget(on, ssh_config=ssh_config, python=remote_python)
        err_console.print(f"[dim]connecting to {on} ...[/]")
        with RemoteExecutor(target, cooldown_s=cooldown) as ex:
            f = ex.facts
            err_console.print(f"[dim]board {on}: {f.get('cpu')} x{f.get('cores')}, {f.get('arch')}, python "
                              f"{f.get('python')} ({ex.python}){' — EMULATED' if ex.emulated else ''}[/]")
            res = _bench(inputs, device, suite, runtime, precision, threads, batch, img_size, overrides, strict,
                         reference, options, timeout, ex)
    _report(res, json_out, csv_out, md_out, plot_out, wide=wide)


def _bench(inputs: list[str] | None, device: str | None, suite: str | None, runtime: str | None,
           precision: list[str] | None, threads: int | None, batch: list[int] | None, img_size: int | None,
           overrides: dict[str, Any], strict: bool, reference: bool, options: dict[str, object],
           timeout: float, executor: "Any") -> "Any":
    """Plan and run, here or through `executor` (a board)."""
    from edgevit.bench.api import plan, run_plan
    from edgevit.bench.protocol import protocol_from

    if suite is not None:
        from edgevit.bench.suites import load_suite, plan_suite

        st = load_suite(suite)
        p = plan_suite(st, profile=device, threads=threads, runtime=runtime, options=options, strict=strict,
                       executor=executor)
        _warn(p.warnings)
        return run_plan(p, protocol_from(st.protocol, **overrides), progress=True, suite=st.name, timeout_s=timeout)
    p = plan(inputs or [], profile=device or "host", runtime=runtime, precision=precision or None, threads=threads,
             batch=batch or None, img_size=img_size, strict=strict, reference=reference, options=options,
             executor=executor)
    _warn(p.warnings)
    return run_plan(p, protocol_from(**overrides), progress=True, timeout_s=timeout)


def _report(res: "Any", json_out: str | None, csv_out: str | None, md_out: str | None, plot_out: str | None,
            *, fail: bool = True, warn_cases: bool = True, wide: bool = False) -> None:
    """Print the table, write the files asked for, raise BenchFailure when a case failed (after writing them)."""
    from edgevit.bench import outputs, tables
    from edgevit.errors import BenchFailure

    if warn_cases:  # seen while measuring (a busy machine, a board that throttled); the plan's came before the run
        _warn([f"{r.case.id}: {w}" for r in res.cases for w in r.warnings], title="seen while measuring")
    show(console, tables.bench_table(res, wide=wide))
    for line in tables.failure_lines(res):
        err_console.print(f"[red]failed:[/] {line}", soft_wrap=True, highlight=False)
    for line in tables.choice_lines(res):
        console.print(line, soft_wrap=True, highlight=False)
    for line in outputs.write(res, outputs.Outputs(json_out, csv_out, md_out, plot_out)):
        err_console.print(line, soft_wrap=True, highlight=False)
    failed = [c for c in res.cases if not c.ok]
    if failed:
        message = f"{len(failed)} of {len(res.cases)} case(s) failed (reasons above); the others were measured"
        if fail:
            raise BenchFailure(message)
        err_console.print(f"[bold red]{message}[/]", soft_wrap=True, highlight=False)


def _fleet(path: Path, inputs: list[str], suite: str | None, protocol: dict[str, Any], precision: list[str] | None,
           strict: bool, reference: bool, timeout: float, json_out: str | None, csv_out: str | None,
           md_out: str | None, plot_out: str | None, ssh_config: Path | None, wide: bool) -> None:
    """`bench --fleet`: every board's table and files, then the combined table and plot."""
    import dataclasses

    from edgevit.bench import fleet as fl
    from edgevit.files import atomic_write_text

    devices = fl.load_fleet(path)
    if ssh_config is not None:
        devices = [d if d.ssh_config else dataclasses.replace(d, ssh_config=ssh_config) for d in devices]
    err_console.print(f"[dim]fleet {path}: {', '.join(f'{d.name} ({d.profile})' for d in devices)}[/]")
    outcomes = fl.run_fleet(devices, inputs=inputs, suite=suite, protocol=protocol, precision=precision or None,
                            strict=strict, reference=reference, timeout_s=timeout, progress=True)
    named = [(o.device.name, o.results) for o in outcomes if o.results is not None]
    errors = [(o.device.name, o.error) for o in outcomes if o.error]
    for _, res in named:
        _warn(res.setup["warnings"])
        _report(res, json_out, csv_out, md_out, None, fail=False, warn_cases=False, wide=wide)
    if named:
        show(console, fl.combined_table(named))
    if md_out is not None and named:
        target = Path(md_out)
        combined = (target if target.is_dir() or md_out.endswith("/") else target.parent) / "fleet.md"
        err_console.print(f"wrote {atomic_write_text(combined, fl.combined_markdown(named, errors))}")
    if plot_out is not None and named:
        err_console.print(f"wrote {fl.plot_fleet(named, plot_out)}")
    for name, err in errors:
        err_console.print(f"[bold red]{name}:[/] {err}", soft_wrap=True, highlight=False)
    if errors or any(not res.ok for _, res in named):
        from edgevit.errors import BenchFailure

        raise BenchFailure(f"{len(errors)} board(s) failed, {sum(not r.ok for _, r in named)} with failed cases")


def _predicts(p: Any) -> str:
    """Which board data `edgevit predict` uses for a profile (or how to get it for this host)."""
    from edgevit.predict.api import available

    if available(p):
        return p.predict_board or "host"
    return "calibrate" if p.detected else "—"


def _warn(warnings: list[str], title: str = "not the profile's device / settings adjusted") -> None:
    if not warnings:
        return
    from rich.panel import Panel

    err_console.print(Panel("\n".join(warnings), title=f"[bold yellow]{title}", border_style="yellow"))


@app.command("devices")
def devices_cmd(
    name: Annotated[str | None, typer.Argument(metavar="PROFILE", help="Show one profile in full.")] = None,
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
    wide: Annotated[bool, typer.Option("--wide", metavar="", help="Also each profile's latency gate.")] = False,
) -> None:
    """List the device profiles: architecture, cores/threads, frequency, runtime, precisions, predictor data."""
    from edgevit.bench.api import available_runtimes
    from edgevit.bench.profiles import (
        describe_profile,
        detect_host,
        host_mismatches,
        list_profiles,
        load_profile,
    )
    from edgevit.predict.api import available
    from edgevit.richtable import Column, show, table

    host = detect_host()
    profiles = [load_profile(name)] if name else list_profiles()
    if json_out:
        typer.echo(json.dumps([p.to_dict() | {"this_machine": not host_mismatches(p, host),
                                              "predictors": [asdict(r) for r in available(p)]} for p in profiles],
                              indent=2))
        return
    if name:
        for line in describe_profile(profiles[0], host):
            console.print(line, highlight=False, soft_wrap=True)
        for r in available(profiles[0]):
            console.print(f"  predictor: {r.key} — {r.networks} networks, LOO median error {r.loo_median:.0%} "
                          f"({r.origin})", highlight=False, soft_wrap=True)
        return
    avail = available_runtimes()
    cols = [Column("name", numeric=False, wrap=False), Column("arch", numeric=False), Column("cores"), Column("GHz"),
            Column("runtime", numeric=False, wrap=False), Column("precisions", numeric=False),
            Column("gate", numeric=False, wide=True), Column("predicts", numeric=False, wrap=False)]
    rows = [[p.name, p.arch, f"{p.cores}/{p.threads}", str(p.frequency_ghz or "—"),
             p.runtime + ("" if avail.get(p.runtime) == "" else "*"), ", ".join(p.precisions),
             f"{p.gate.rel_tolerance:.0%}+{p.gate.abs_floor_ms:g}ms", _predicts(p)] for p in profiles]
    show(console, table(cols, rows, title=f"device profiles (this machine: {host.cpu} x{host.cores}, {host.arch})",
                        caption="cores: cores/threads; * runtime not installed here; predicts: the board data "
                        "`edgevit predict` uses (edgevit devices NAME)", wide=wide))


@app.command("merge")
def merge_cmd(
    results: Annotated[list[Path], typer.Argument(metavar="RESULTS...", help="Result JSON files of `edgevit bench "
                                                  "--json`, one or more per device (e.g. a device-fleet CI run).")],
    md_out: Annotated[Path | None, typer.Option("--markdown", metavar="FILE", help="Write the combined Markdown "
                                                "table here.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", metavar="FILE", help="Write the latency-per-model-per-"
                                                  "device PNG here.")] = None,
) -> None:
    """Combine results of several devices: one column per device (never one device's figure in another's
    column), plus a plot of latency per model per device."""
    from edgevit.bench import fleet as fl
    from edgevit.bench.api import load_results
    from edgevit.files import atomic_write_text

    named = []
    for path in results:
        res = load_results(path)
        named.append((fl.device_name(res), res))
    show(console, fl.combined_table(named))
    if md_out is not None:
        err_console.print(f"wrote {atomic_write_text(md_out, fl.combined_markdown(named))}")
    if plot_out is not None:
        err_console.print(f"wrote {fl.plot_fleet(named, plot_out)}")
