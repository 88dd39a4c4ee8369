"""Where the selection's latency figures come from: a cost source, measured here or predicted for a device.

A cost source answers two questions about a float artifact and an int8 variant of it, on one runtime
with one thread count: what each quantizable node costs in int8 (its kernel plus the Q/DQ and layout
nodes around it) and in float (`node_costs`), and whether a whole artifact is faster than another
(`speed`, `compare`). Per-node figures propose; whole-model figures decide (a node kept float can
cost its neighbours layout changes that no per-node figure shows). The targets measure on this host (ONNX Runtime per-node profiling, ExecuTorch's ETDump);
a device not at hand gets its figures from a predictor registered here (`register_predictor`), which
answers the same two questions from its per-kernel cost model. Figures are always labelled with their
source: a prediction is never shown as a measurement.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgevit.quantize.select import Candidate
    from edgevit.quantize.verdict import SpeedVerdict

MEASURED, PREDICTED = "measured", "predicted"


@dataclass(frozen=True)
class NodeCost:
    """One quantizable node: median ms per inference in the int8 variant and in the float model."""

    int8_ms: float
    float_ms: float

    @property
    def saving_ms(self) -> float:
        return self.float_ms - self.int8_ms

    def pays(self, margin: float) -> bool:
        """int8 is cheaper than float by more than `margin` (a fraction of the float cost)."""
        return self.int8_ms < self.float_ms * (1.0 - margin)


@dataclass
class CostTable:
    """Per-node costs of one int8 variant against its float model, and what they leave unexplained."""

    costs: dict[str, NodeCost]
    source: str  # "onnxruntime 1.32 per-node profiling, 2 threads, this host" / "predicted for ..."
    kind: str = MEASURED
    runs: int = 0
    rest_int8_ms: float = 0.0  # node time not attributed to any candidate (float ops: LayerNorm, GELU, ...)
    rest_float_ms: float = 0.0
    unmeasured: list[str] = field(default_factory=list)  # candidates no figure could be attributed to
    notes: list[str] = field(default_factory=list)

    @property
    def int8_total_ms(self) -> float:
        return sum(c.int8_ms for c in self.costs.values()) + self.rest_int8_ms

    @property
    def float_total_ms(self) -> float:
        return sum(c.float_ms for c in self.costs.values()) + self.rest_float_ms

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["costs"] = {n: {"int8_ms": round(c.int8_ms, 4), "float_ms": round(c.float_ms, 4)}
                      for n, c in self.costs.items()}
        d["int8_total_ms"] = round(self.int8_total_ms, 4)
        d["float_total_ms"] = round(self.float_total_ms, 4)
        return d


class CostSource(Protocol):
    """What the selection loop asks about latency (measured here, or predicted for a device)."""

    kind: str  # MEASURED | PREDICTED
    description: str  # runtime, threads, machine or device: printed beside every figure

    def node_costs(self, float_artifact: Path, int8_artifact: Path,
                   candidates: Sequence["Candidate"]) -> CostTable: ...

    def speed(self, float_artifact: Path, int8_artifact: Path) -> "SpeedVerdict": ...

    def compare(self, base: Path, variants: dict[str, Path]) -> dict[str, "SpeedVerdict"]:
        """Each variant against `base`, whole-model and paired (variants of one model: same inputs)."""
        ...


# A predictor for devices not at hand registers a factory per runtime key: (device profile name,
# threads) -> CostSource. None is registered until edgevit.predict provides one.
PredictorFactory = Callable[[str, int], CostSource]
_PREDICTORS: dict[str, PredictorFactory] = {}


def register_predictor(runtime: str, factory: PredictorFactory) -> None:
    """Register the predicted cost source of one runtime (loud on a duplicate)."""
    if runtime in _PREDICTORS:
        raise ValueError(f"a cost predictor for runtime {runtime!r} is already registered")
    _PREDICTORS[runtime] = factory


def predicted_costs(runtime: str, device: str, threads: int) -> CostSource | None:
    """The registered predictor's cost source for `device`, or None when no predictor covers `runtime`."""
    factory = _PREDICTORS.get(runtime)
    return None if factory is None else factory(device, threads)
