"""`edgevit verify ARTIFACT`: run the artifact against its PyTorch reference, print a table, update the sidecar."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgevit.cli.app import app, console
from edgevit.richtable import Column, show, table

if TYPE_CHECKING:
    from edgevit.verify import VerifyReport


VERIFY_COLUMNS = (
    Column("output", numeric=False), Column("images"), Column("max abs err"), Column("mean abs err", wide=True),
    Column("rel err", wide=True), Column("cosine"), Column("cosine min"), Column("SQNR dB", wide=True),
    Column("top-1 agree"), Column("result", numeric=False),
)


def print_report(rep: "VerifyReport", *, wide: bool = False) -> None:
    """The verification report: a table of 80 columns (every column with `wide`), failures under it."""
    from edgevit.artifact import format_size

    rows = [[o.name, str(o.images), f"{o.max_abs_error:.3g}", f"{o.mean_abs_error:.3g}", f"{o.relative_error:.3g}",
             f"{o.cosine:.5f}", f"{o.cosine_min:.5f}", f"{o.sqnr_db:.1f}",
             f"{o.top1_agreement:.3f}" + ("" if rep.judged_top1 else "*"), "pass" if not o.failures else "FAIL"]
            for o in rep.outputs]
    if rows:
        title = f"verify {Path(rep.artifact).name} [{rep.target} {rep.precision}]"
        caption = "" if rep.judged_top1 else "* top-1 recorded, not judged (seeded weights: labels mean nothing)"
        show(console, table(VERIFY_COLUMNS, rows, title=title, caption=caption, wide=wide,
                            styles=["red" if o.failures else None for o in rep.outputs]))
    for o in rep.outputs:
        for failure in o.failures:
            console.print(f"[red]{o.name}: {failure}[/]", soft_wrap=True)
    hist = rep.inspection.get("op_histogram", {})
    top = ", ".join(f"{k} {v}" for k, v in list(hist.items())[:8])
    int8 = f", int8 layers {rep.inspection['int8_layers']}" if rep.inspection.get("int8_layers") else ""
    console.print(f"size {format_size(rep.size_bytes)}, nodes {rep.inspection.get('nodes', '?')}: {top}{int8}",
                  highlight=False)
    if rep.latency_ms:
        lat = rep.latency_ms
        console.print(f"latency (quick, batch {lat['batch']}): median {lat['median']:.2f} ms, p90 {lat['p90']:.2f} ms")
    if rep.dynamic_batch_check:
        console.print(rep.dynamic_batch_check)
    style = "green" if rep.executed and rep.passed else "yellow" if not rep.executed else "red"
    console.print(f"[{style}]{rep.status}[/]", highlight=False, soft_wrap=True)


@app.command("verify")
def verify_cmd(
    artifact: Annotated[Path, typer.Argument(metavar="ARTIFACT", help="Artifact exported by edgevit (its record "
                                             "ARTIFACT.json beside it).")],
    calib_data: Annotated[Path | None, typer.Option(metavar="DIR", help="Also compare on the hold-out of this "
                                                    "image folder.")] = None,
    threads: Annotated[int, typer.Option(metavar="N", help="Runtime threads.")] = 2,
    write: Annotated[bool, typer.Option("--write/--no-write", metavar="", help="Store the report in the "
                                        "artifact's record.")] = True,
    wide: Annotated[bool, typer.Option("--wide", metavar="", help="Every column (mean and relative error, "
                                       "SQNR); the default fits 80 columns.")] = False,
) -> None:
    """Compare ARTIFACT with its PyTorch reference on real photos; exit 1 when it does not match."""
    from edgevit.artifact import read_record, sidecar_path, write_record
    from edgevit.errors import VerificationError
    from edgevit.verify import verify

    record = read_record(artifact) if artifact.exists() else None
    rep = verify(artifact, record=record, calib_data=calib_data, threads=threads)
    print_report(rep, wide=wide)
    if write and record is not None:
        record.verification = rep.as_dict()
        write_record(record, sidecar_path(artifact))
    if rep.executed and not rep.passed:
        raise VerificationError(f"{artifact.name} does not match its reference: {rep.reason}")
