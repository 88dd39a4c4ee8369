"""What the speed scripts share: the models they cover and edgevit's seeded weights saved as a checkpoint.

Scripts run as files (`python benchmarks/X.py`), so this sibling module is importable by plain name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgevit.verify import cosine_rows  # noqa: F401  (re-exported for the scripts)

DEFAULT_MODELS = ("fcaformer_l1", "cas_vit_xs", "stvit_small")  # the issues' three representatives


def save_fixture_checkpoint(name: str, folder: Path) -> tuple[Path, str]:
    """edgevit's seeded weights of realistic scale (what an export without --checkpoint uses) as a .pt file,
    so a naive export of the same model (no edgevit export pipeline) gets exactly the same weights."""
    import torch

    from edgevit.models import SEEDED, build_reference

    path = Path(folder) / f"{name}_seeded.pt"
    torch.save(build_reference(name).state_dict(), path)
    return path, f"seeded weights ({SEEDED}, seed 0)"


def write_report(report: dict[str, Any], markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown report and write it (and the JSON report) where asked, each atomically."""
    from edgevit.files import atomic_write_text

    print(markdown)
    for path, text in ((json_path, json.dumps(report, indent=1) + "\n"), (md_path, markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
