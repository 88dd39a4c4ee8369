"""What the benchmark scripts share: fixture weights, the conformance bound, row cosines, torch logits.

Scripts run as files (`python benchmarks/X.py`), so this sibling module is importable by plain name.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("fcaformer_l1", "cas_vit_xs", "stvit_small")  # the issues' three representatives
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet normalisation of all four families
COSINE_MIN = 0.999  # emulated vs x86 artifact of the same precision
if str(REPO) not in sys.path:  # for tests.conformance (the official-checkpoint fixtures)
    sys.path.insert(0, str(REPO))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of a with the same row of b (float64)."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(den, 1e-300)


def conformance_bound(ref: np.ndarray) -> float:
    """1e-4 * max(1, max|ref|): the bound of ../shared/conformance."""
    return 1e-4 * max(1.0, float(np.abs(ref).max()))


def fixture_checkpoint(name: str) -> tuple[dict[str, Any] | None, str]:
    """The official-checkpoint fixture's state dict (non-degenerate weights), or None and why not.

    FcaFormer at its own random init collapses to logits ~1e-19, which would make every check vacuous.
    """
    try:
        from tests import conformance

        state = conformance.official_state_dict(name)
        return state, f"conformance fixture {name} (official keys, seeded weights)"
    except Exception as exc:  # fixtures absent outside the repository checkout
        return None, f"random init (no conformance fixture: {type(exc).__name__})"


def save_fixture_checkpoint(name: str, folder: Path) -> tuple[Path | None, str]:
    """`fixture_checkpoint` written as a .pt file that `edgevit export --checkpoint` takes."""
    import torch

    state, source = fixture_checkpoint(name)
    if state is None:
        return None, source
    path = folder / f"{name}_fixture.pt"
    torch.save(state, path)
    return path, source


def run_torch(name: str, state: Any, x: np.ndarray) -> np.ndarray:
    """Logits of the PyTorch model (train form, eval mode, float32), one image at a time."""
    import torch

    from edgevit.models import create_model

    model = create_model(name, checkpoint=state).eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))])


def write_report(report: dict[str, Any], markdown: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown report and write it (and the JSON report) where asked."""
    import json

    print(markdown)
    for path, text in ((json_path, json.dumps(report, indent=1) + "\n"), (md_path, markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
