"""What the emulation proofs share: the models they cover, their weights (fixture or seeded), torch
logits, report writing."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevit.verify import conformance_bound, cosine_rows  # noqa: F401  (re-exported for the proofs)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODELS = ("fcaformer_l1", "cas_vit_xs", "stvit_small")  # the issues' three representatives
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet normalisation of all four families
COSINE_MIN = 0.999  # emulated vs x86 artifact of the same precision


def fixture_checkpoint(name: str) -> tuple[dict[str, Any], str, bool]:
    """(state, label, is_fixture): the conformance fixture's official-layout weights where ../shared has them
    (the weights the issues' accuracy goals name), else edgevit's seeded weights (what an export without
    --checkpoint builds itself)."""
    from edgevit.models import SEEDED, build_reference

    try:
        from tests import conformance

        return conformance.official_state_dict(name), f"conformance fixture {name} (official keys)", True
    except Exception as exc:  # noqa: BLE001  fixtures absent outside a checkout beside ../shared
        why = type(exc).__name__
    return build_reference(name).state_dict(), f"seeded weights ({SEEDED}, seed 0; no fixture: {why})", False


def export_checkpoint(name: str, state: Any, is_fixture: bool, workdir: Path, reuse: bool) -> Path | None:
    """The --checkpoint the proofs export with: the fixture's weights as a file; None for seeded weights
    (the export builds the same ones itself and, as for any export without trained weights, does not
    judge top-1 on them)."""
    if not is_fixture:
        return None
    import torch

    ckpt = workdir / f"{name}-fixture.pth"
    if not (reuse and ckpt.is_file()):
        torch.save(state, ckpt)
    return ckpt


def run_torch(name: str, state: Any, x: np.ndarray) -> np.ndarray:
    """Logits of the PyTorch model (train form, eval mode, float32), one image at a time."""
    import torch

    from edgevit.models import create_model

    model = create_model(name, checkpoint=state).eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))])


def write_report(report: dict[str, Any], markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown report and write it (and the JSON report) where asked."""
    from edgevit.files import atomic_write_json, atomic_write_text

    print(markdown)
    if json_path is not None:
        atomic_write_json(json_path, report, indent=1)
    if md_path is not None:
        atomic_write_text(md_path, markdown)
