"""Access to the official-checkpoint fixtures in ../shared/conformance (see its README)."""
from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE_DIR = Path(os.environ.get("EDGEVIT_CONFORMANCE_DIR", REPO.parent / "shared" / "conformance"))


@cache
def weights_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edgevit_conformance_weights", CONFORMANCE_DIR / "weights.py")
    if spec is None or spec.loader is None or not (CONFORMANCE_DIR / "weights.py").is_file():
        raise FileNotFoundError(f"conformance fixtures not found at {CONFORMANCE_DIR} (set EDGEVIT_CONFORMANCE_DIR)")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fixture_names() -> list[str]:
    return sorted(p.stem for p in (CONFORMANCE_DIR / "manifests").glob("*.json"))


def official_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The fixture's state dict, in the official key names."""
    w = weights_module()
    ref = w.load_reference(name)
    sd = w.make_state_dict(w.load_manifest(name), int(ref["weight_seed"]))
    return {k: torch.from_numpy(v) for k, v in sd.items()}


def reference(name: str) -> dict:
    return weights_module().load_reference(name)


def reference_input(name: str, batch: int | None = None) -> torch.Tensor:
    """The fixture's input; batch > stored batch repeats it (rows must then give identical logits)."""
    ref = reference(name)
    x = weights_module().make_input(int(ref["batch"]), int(ref["size"]), int(ref["input_seed"]))
    t = torch.from_numpy(x)
    if batch is not None and batch != t.shape[0]:
        t = t.repeat(batch // t.shape[0] + 1, 1, 1, 1)[:batch]
    return t


def bound(name: str) -> float:
    """The conformance bound: 1e-4 * max(1, max|reference|)."""
    return 1e-4 * max(1.0, float(np.abs(reference(name)["logits"]).max()))


def assert_conforms(name: str, logits: torch.Tensor | np.ndarray) -> float:
    """Every row of `logits` within the bound of the reference row; returns the max error."""
    ref = reference(name)["logits"]
    out = logits.detach().double().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, np.float64)
    ref_rows = np.resize(ref, out.shape) if out.shape[0] != ref.shape[0] else ref
    err = float(np.abs(out - ref_rows).max())
    assert err <= bound(name), f"{name}: max |logit error| {err:.3g} > bound {bound(name):.3g}"
    return err
