"""Latency vs GMACs and vs params (PNG), like the comparison figures of the FcaFormer/CAS-ViT papers.

One marker per case at its median latency with a p10-p90 bar; one series per runtime+precision;
each point labelled with its model. Cases without MACs (artifact files without a sidecar, or no MACs
counter) appear only in the params panel, and cases without either are listed in the caption.
Uses matplotlib's Agg backend (files only, no display), imported lazily.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.errors import UnavailableError

if TYPE_CHECKING:
    from edgevit.bench.api import BenchResults


def plot(results: "BenchResults", target: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UnavailableError("--plot needs matplotlib: pip install 'edgevit[bench]'") from None
    from edgevit.bench.protocol import percentile
    from edgevit.bench.tables import host_line, output_path

    path = output_path(target, results, ".png")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    series: dict[str, list] = {}
    skipped = []
    for r in results.cases:
        if not r.ok or r.case.reference:
            continue
        if not (r.case.macs or r.case.params):
            skipped.append(r.case.id)
            continue
        series.setdefault(f"{r.case.runtime} {r.case.precision} b{r.case.batch}", []).append(r)
    for label, items in sorted(series.items()):
        for ax, attr, scale in ((axes[0], "macs", 1e9), (axes[1], "params", 1e6)):
            pts = [(getattr(r.case, attr) / scale, r) for r in items if getattr(r.case, attr)]
            if not pts:
                continue
            pts.sort(key=lambda t: t[0])
            xs = [x for x, _ in pts]
            med = [r.stats["median"] for _, r in pts]
            lo = [m - percentile(sorted(r.samples_ms), 10) for m, (_, r) in zip(med, pts)]
            hi = [percentile(sorted(r.samples_ms), 90) - m for m, (_, r) in zip(med, pts)]
            ax.errorbar(xs, med, yerr=[lo, hi], marker="o", capsize=3, label=label, linestyle="-")
            for x, (_, r), m in zip(xs, pts, med):
                ax.annotate(r.case.model or r.case.id.split("/")[0], (x, m), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
    axes[0].set_xlabel("GMACs")
    axes[1].set_xlabel("params (M)")
    axes[0].set_ylabel("latency, median ms (bar: p10-p90)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    s = results.setup
    where = "" if s["on_device"] else " (NOT the device)"
    if s.get("measured_on") == "emulated":
        where += " EMULATED (qemu): correctness only, NOT device timings"
    fig.suptitle(f"{s['profile']}{where}: {s['threads']} threads — {host_line(results)}", fontsize=10)
    if skipped:
        fig.text(0.01, 0.01, "no MACs/params for: " + ", ".join(skipped), fontsize=7)
    fig.tight_layout()
    from edgevit.files import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path
