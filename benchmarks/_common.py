"""What the speed scripts share: the models they cover and the weights they time, saved as a checkpoint.

Scripts run as files (`python benchmarks/X.py`), so this sibling module is importable by plain name.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgevit.verify import cosine_rows  # noqa: F401  (re-exported for the scripts)

DEFAULT_MODELS = ("fcaformer_l1", "cas_vit_xs", "stvit_small")  # the issues' three representatives


def save_fixture_checkpoint(name: str, folder: Path) -> tuple[Path, str]:
    """The weights the issues' accuracy goals name (the emulation proofs' choice: the conformance fixture
    where ../shared has it, else edgevit's seeded weights), saved as a .pt checkpoint so a naive export (no
    edgevit pipeline) gets exactly the same ones. Returns (path, label)."""
    import sys

    import torch

    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    from tests.emulation.common import fixture_checkpoint

    state, label, _ = fixture_checkpoint(name)
    path = Path(folder) / f"{name}_weights.pt"
    torch.save(state, path)
    return path, label


def write_report(report: dict[str, Any], markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown report and write it (and the JSON report) where asked, each atomically."""
    from edgevit.files import atomic_write_text

    print(markdown)
    for path, text in ((json_path, json.dumps(report, indent=1) + "\n"), (md_path, markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
