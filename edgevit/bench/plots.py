"""Latency vs GMACs and vs params (PNG), like the comparison figures of the FcaFormer/CAS-ViT papers.

One point per case (no lines: different models are not a series), at its median with a p10-p90 bar,
one marker style per runtime+precision, every point labelled with its model, labels moved apart so they
never overlap. A profile's published latencies are drawn (hollow, labelled "published") only when the
run was measured on that device, where they compare like with like. Cases without MACs/params are listed
in the caption. matplotlib's Agg backend (files only), imported lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import UnavailableError

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults

MARKERS = "osD^vP*X"


def spread_labels(ys: list[float], min_gap: float) -> list[float]:
    """Label heights for points at `ys` (any order): as close to each point as possible, never closer
    than `min_gap` to another label (a greedy upward sweep over the sorted points)."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = list(ys)
    last = None
    for i in order:
        y = ys[i] if last is None else max(ys[i], last + min_gap)
        out[i] = y
        last = y
    return out


def _points(results: "BenchResults", attr: str, scale: float) -> list[tuple[str, float, Any]]:
    return [(f"{r.case.runtime} {r.case.precision}", getattr(r.case, attr) / scale, r) for r in results.cases
            if r.ok and not r.case.reference and getattr(r.case, attr)]


def _panel(ax: Any, points: list[tuple[str, float, Any]], styles: dict[str, str], log_y: bool) -> None:
    import numpy as np

    from edgevit.bench.protocol import percentile

    for label, x, r in points:
        med = r.stats["median"]
        lo = med - percentile(sorted(r.samples_ms), 10)
        hi = percentile(sorted(r.samples_ms), 90) - med
        ax.errorbar([x], [med], yerr=[[lo], [hi]], marker=styles[label], linestyle="none", capsize=3,
                    color=f"C{list(styles).index(label)}", label=label)
    if not points:
        return
    ys = [r.stats["median"] for _, _, r in points]
    heights = np.log10(ys) if log_y else np.asarray(ys)
    span = float(heights.max() - heights.min()) or 1.0
    placed = spread_labels(list(heights), span * 0.06)
    for (_, x, r), y, own in zip(points, placed, heights, strict=True):
        moved = abs(y - own) > 1e-12  # a label pushed away from its point gets a thin leader line
        ax.annotate(f"  {r.case.model or r.case.id.split('/')[0]}", (x, r.stats["median"]),
                    xytext=(x, 10**y if log_y else y), textcoords="data", fontsize=8, ha="left", va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "alpha": 0.5} if moved else None)


def _published(ax: Any, results: "BenchResults", attr: str, scale: float) -> None:
    """The profile's published figures, where this run was measured on the device itself."""
    if not results.setup.get("on_device"):
        return
    by_model = {r.case.model: getattr(r.case, attr) for r in results.cases if r.case.model and getattr(r.case, attr)}
    for ref in (results.profile or {}).get("references") or []:
        if ref.get("model") in by_model:
            x = by_model[ref["model"]] / scale
            ax.plot([x], [ref["latency_ms"]], marker="o", fillstyle="none", color="k", linestyle="none")
            ax.annotate(f"{ref['model']} (published)", (x, ref["latency_ms"]), fontsize=7, xytext=(4, -10),
                        textcoords="offset points")


def plot(results: "BenchResults", target: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UnavailableError("--plot needs matplotlib: pip install 'edgevit[bench]'") from None
    from edgevit.bench.tables import bench_title, host_line, output_path
    from edgevit.files import atomic_path

    path = output_path(target, results, ".png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    labels = sorted({f"{r.case.runtime} {r.case.precision}" for r in results.cases if r.ok and not r.case.reference})
    styles = {label: MARKERS[i % len(MARKERS)] for i, label in enumerate(labels)}
    medians = [r.stats["median"] for r in results.cases if r.ok and not r.case.reference]
    log_y = bool(medians) and max(medians) / max(min(medians), 1e-9) > 20
    for ax, attr, scale, xlabel in ((axes[0], "macs", 1e9, "GMACs"), (axes[1], "params", 1e6, "params (M)")):
        _panel(ax, _points(results, attr, scale), styles, log_y)
        _published(ax, results, attr, scale)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if log_y:
            ax.set_yscale("log")
        handles, names = ax.get_legend_handles_labels()
        if handles:
            unique = dict(zip(names, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
    axes[0].set_ylabel("latency, median ms (bar: p10-p90)")
    fig.suptitle(f"{bench_title(results)}: {results.setup['threads']} threads — {host_line(results)}", fontsize=9)
    skipped = [r.case.id for r in results.cases if r.ok and not r.case.reference and not (r.case.macs or r.case.params)]
    if skipped:
        fig.text(0.01, 0.01, "no MACs/params for: " + ", ".join(skipped), fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
