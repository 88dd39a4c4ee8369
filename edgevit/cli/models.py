"""`edgevit models` and `edgevit info`: the zoo at a glance, with params and MACs we count ourselves."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from edgevit.cli.app import app, console
from edgevit.richtable import Column, fmt, show, table


@app.command("models")
def models_cmd(
    family: Annotated[str | None, typer.Option(metavar="NAME", help="Only this family (fcaformer, cabvit, casvit, "
                                               "stvit).")] = None,
    json_out: Annotated[bool, typer.Option("--json", metavar="", help="Machine-readable output.")] = False,
    count: Annotated[bool, typer.Option("--count", metavar="", help="Count params and GMACs here (builds every "
                                        "model once; cached afterwards).")] = False,
    wide: Annotated[bool, typer.Option("--wide", metavar="", help="Also the papers.")] = False,
) -> None:
    """List the model zoo: family, published params/GMACs/top-1, and the figures counted here (cached;
    --count to compute them)."""
    from edgevit.models import list_models
    from edgevit.models._summary import summaries

    names = list_models(family)
    if not names:
        from edgevit.errors import ConfigError

        raise ConfigError(f"no models in family {family!r}; families: {', '.join(_families())}")
    rows = summaries(names, count=count)
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    cols = [Column("name", numeric=False, wrap=False), Column("family", numeric=False), Column("params M"),
            Column("GMACs"), Column("published params/GMACs"), Column("top-1 %"),
            Column("paper", numeric=False, wide=True)]
    cells = [[r["name"] + ("" if r["official_checkpoint"] else " *"), r["family"], fmt(r["params_m"]),
              fmt(r["gmacs"]), f"{fmt(r['published']['params_m'])} / {fmt(r['published']['gmacs'])}",
              fmt(r["published"]["top1"], ".1f"), r["paper"]] for r in rows]
    notes = ["* no official checkpoint (built from the paper)"] if not all(r["official_checkpoint"] for r in rows) else []
    if any(r["params_m"] is None for r in rows):
        notes.append("— not counted yet: edgevit models --count")
    show(console, table(cols, cells, title="edgevit model zoo", caption="; ".join(notes), wide=wide))


def _families() -> list[str]:
    from edgevit.models import list_models, model_info

    return sorted({model_info(n).family for n in list_models()})


@app.command("info")
def info_cmd(
    name: Annotated[str, typer.Argument(help="Model name or alias.")],
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One model's config, counted params/MACs and a layer summary."""
    from edgevit.models import create_model, model_info
    from edgevit.models._summary import summaries

    info = model_info(name)
    row = summaries([info.name], count=True)[0]
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
        f"params {row['params_m']:.2f} M (published {fmt(pub['params_m'])}), "
        f"GMACs {row['gmacs']:.2f} @ {cfg['img_size']} (published {fmt(pub['gmacs'])}), "
        f"top-1 {fmt(pub['top1'], '.1f')} %"
    )
    console.print("default config: " + ", ".join(f"{k}={v}" for k, v in cfg.items()), highlight=False,
                  soft_wrap=True)
    cols = [Column("name", numeric=False, wrap=False), Column("type", numeric=False), Column("params")]
    show(console, table(cols, [[c["name"], c["type"], f"{c['params']:,}"] for c in children],
                        title="top-level layers"))
