"""`edgevit models` and `edgevit info`: the zoo at a glance, with params and MACs we count ourselves."""
from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from edgevit.cli.app import app, console


def _row(name: str, *, measure: bool) -> dict[str, Any]:
    from edgevit.models import create_model, model_info
    from edgevit.models._macs import count_macs, count_params

    info = model_info(name)
    row: dict[str, Any] = {
        "name": info.name,
        "family": info.family,
        "aliases": list(info.aliases),
        "official_checkpoint": info.official,
        "img_size": info.default_cfg["img_size"],
        "published": {"params_m": info.params_m, "gmacs": info.gmacs, "top1": info.top1},
        "paper": info.paper,
    }
    if measure:
        model = create_model(name)
        row["params_m"] = round(count_params(model) / 1e6, 3)
        row["gmacs"] = round(count_macs(model, info.default_cfg["img_size"]) / 1e9, 3)
    return row


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "—" if value is None else format(value, spec)


@app.command("models")
def models_cmd(
    family: Annotated[str | None, typer.Option(help="Only this family (fcaformer, cabvit, casvit, stvit).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="Skip building models; published figures only.")] = False,
) -> None:
    """List the model zoo: family, params and GMACs at 224 (counted here) beside the published figures."""
    from edgevit.models import list_models

    names = list_models(family)
    if not names:
        from edgevit.errors import ConfigError

        raise ConfigError(f"no models in family {family!r}")
    rows = [_row(n, measure=not fast) for n in names]
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="edgevit model zoo", header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    for col in ("params (M)", "GMACs @224", "published params / GMACs", "top-1 %"):
        table.add_column(col, justify="right")
    table.add_column("paper", no_wrap=True, overflow="ellipsis", max_width=48)
    for r in rows:
        pub = r["published"]
        table.add_row(
            r["name"] + ("" if r["official_checkpoint"] else " *"),
            r["family"],
            _fmt(r.get("params_m")),
            _fmt(r.get("gmacs")),
            f"{_fmt(pub['params_m'])} / {_fmt(pub['gmacs'])}",
            _fmt(pub["top1"], ".1f"),
            r["paper"],
        )
    console.print(table)
    if not all(r["official_checkpoint"] for r in rows):
        console.print("* no official checkpoint (built from the paper's description)", style="dim")


@app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="Model name or alias.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One model's config, counted params/MACs and a layer summary."""
    from edgevit.models import create_model, model_info

    info = model_info(name)
    row = _row(info.name, measure=True)
    model = create_model(info.name)
    children = [
        {"name": n, "type": type(m).__name__, "params": sum(p.numel() for p in m.parameters())}
        for n, m in model.named_children()
    ]
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.default_cfg.items()}
    if json_out:
        typer.echo(json.dumps({**row, "default_cfg": cfg, "layers": children}, indent=2))
        return
    console.print(f"[bold]{info.name}[/] ({info.family}) — {info.paper}")
    if info.aliases:
        console.print(f"aliases: {', '.join(info.aliases)}")
    pub = row["published"]
    console.print(
        f"params {row['params_m']:.2f} M (published {_fmt(pub['params_m'])}), "
        f"GMACs {row['gmacs']:.2f} @ {cfg['img_size']} (published {_fmt(pub['gmacs'])}), "
        f"top-1 {_fmt(pub['top1'], '.1f')} %"
    )
    console.print(f"default config: {cfg}")
    table = Table(title="top-level layers", header_style="bold")
    table.add_column("name")
    table.add_column("type")
    table.add_column("params", justify="right")
    for c in children:
        table.add_row(c["name"], c["type"], f"{c['params']:,}")
    console.print(table)
