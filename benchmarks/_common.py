"""What the speed scripts share: the models they cover and edgevit's seeded weights saved as a checkpoint.

Scripts run as files (`python benchmarks/X.py`), so this sibling module is importable by plain name.
"""
from __future__ import annotations

from pathlib import Path

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
