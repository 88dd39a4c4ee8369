"""The accuracy budget of a mixed-precision int8 model: how close to its own fp32 model it must stay.

Judged on the calibration hold-out, on the target runtime: mean and minimum cosine of the logits to
the fp32 artifact's, and top-1 agreement with it. Labels are not needed (the digits-trained test,
tests/test_int8_accuracy.py, checks real top-1 on trained models). A node's own accuracy cost (its
*drift*) ranks which one goes back to float first, as NNCF's accuracy-aware quantization ranks layers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgevit.errors import ConfigError

# Mean hold-out cosine to fp32: the project's int8 bar on the photos (issue 18); verify's own int8
# bar is 0.98. `--option int8_cosine=X` raises or lowers it.
DEFAULT_COSINE = 0.995
DEFAULT_COSINE_MIN = 0.99  # the worst hold-out image
DEFAULT_TOP1_AGREEMENT = 0.9  # top-1 agreement with fp32 on the hold-out (only judged with trained weights)


@dataclass(frozen=True)
class Accuracy:
    """Fidelity of one int8 configuration to the fp32 artifact on the hold-out images."""

    cosine: float
    cosine_min: float
    top1_agreement: float
    images: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AccuracyBudget:
    """The bar a configuration must meet; `top1_agreement` None leaves top-1 unjudged (seeded weights)."""

    cosine: float = DEFAULT_COSINE
    cosine_min: float = DEFAULT_COSINE_MIN
    top1_agreement: float | None = None

    def __post_init__(self) -> None:
        for name in ("cosine", "cosine_min", "top1_agreement"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ConfigError(f"int8 accuracy budget: {name} must be between 0 and 1, got {v}")

    def misses(self, acc: Accuracy) -> list[str]:
        """Why `acc` misses the budget (empty when it meets it)."""
        out = []
        if acc.cosine < self.cosine:
            out.append(f"hold-out cosine {acc.cosine:.5f} < {self.cosine}")
        if acc.cosine_min < self.cosine_min:
            out.append(f"worst hold-out cosine {acc.cosine_min:.5f} < {self.cosine_min}")
        if self.top1_agreement is not None and acc.top1_agreement < self.top1_agreement:
            out.append(f"top-1 agreement {acc.top1_agreement:.3f} < {self.top1_agreement}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(ref: np.ndarray, out: np.ndarray) -> Accuracy:
    """Fidelity of `out` (N, C) to the fp32 logits `ref` (N, C)."""
    from edgevit.verify import cosine_rows

    cos = cosine_rows(ref, out)
    r, o = ref.reshape(len(ref), -1), out.reshape(len(out), -1)
    return Accuracy(cosine=float(cos.mean()), cosine_min=float(cos.min()),
                    top1_agreement=float((r.argmax(1) == o.argmax(1)).mean()), images=int(len(ref)))


def tensor_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two whole tensors (float64); 1 when both are zero."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    den = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / den) if den > 0 else float(np.array_equal(x, y))


class DriftMeter:
    """Accumulates per-node cosines (int8 run vs fp32 run, image by image) of each node's input and
    output; a node's drift is what it loses itself: cosine of its input minus cosine of its output.

    `io` maps a node to ((input in the fp32 run, input in the int8 run), (output in the fp32 run,
    output in the int8 run)): in the int8 run the output is the dequantized one its consumers read,
    so that the node's own output quantization counts against it."""

    def __init__(self, io: dict[str, tuple[tuple[str, str], tuple[str, str]]]) -> None:
        self.io = io
        self._sums: dict[tuple[str, str], float] = {}
        self._n = 0

    def ref_tensors(self) -> list[str]:
        return sorted({pair[0] for io in self.io.values() for pair in io})

    def got_tensors(self) -> list[str]:
        return sorted({pair[1] for io in self.io.values() for pair in io})

    def add(self, ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
        """One image's tensors (name -> array) from the fp32 run and the int8 run."""
        for pair in {p for io in self.io.values() for p in io}:
            if pair[0] in ref and pair[1] in got:
                self._sums[pair] = self._sums.get(pair, 0.0) + tensor_cosine(ref[pair[0]], got[pair[1]])
        self._n += 1

    def drift(self) -> dict[str, float]:
        if not self._n:
            return {}
        mean = {p: s / self._n for p, s in self._sums.items()}
        return {n: mean.get(i, 1.0) - mean[o] for n, (i, o) in self.io.items() if o in mean}
