"""The artifact record: the sidecar `<artifact>.json` every export writes, as one typed, versioned
dataclass with one reader and one writer.

It says what the artifact is (model, target, precision, shapes), how to feed it (preprocessing), where
its weights came from (checkpoint hash or the seeded weights' rule), its own sha256 and size, the export
facts and the verification report. Export writes it; verify, bench, the cache and the predictor read it.
Version 1 sidecars (no `schema` key; `checkpoint` and `size_mb` fields) still read.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.errors import ConfigError, VerificationError
from edgevit.files import atomic_write_json

if TYPE_CHECKING:
    from torch import nn

SCHEMA = "edgevit.artifact/2"
MB = 1_000_000  # sizes are shown in MB = 10^6 bytes everywhere (`format_size`)


def sidecar_path(artifact: str | Path) -> Path:
    p = Path(artifact)
    return p.with_name(p.name + ".json")


def artifact_files(path: Path) -> list[Path]:
    """The files of an artifact: itself, or every file of an artifact directory in sorted order."""
    path = Path(path)
    return sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]


def artifact_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a directory's relative names and bytes in sorted order (.mlpackage)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in artifact_files(path):
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def artifact_size(path: str | Path) -> int:
    """Bytes of an artifact file, or of all files of an artifact directory."""
    return sum(f.stat().st_size for f in artifact_files(Path(path)))


def format_size(n_bytes: int | float | None) -> str:
    """The one way sizes are printed: MB (10^6 bytes) with two decimals."""
    return "—" if n_bytes is None else f"{n_bytes / MB:.2f} MB"


@dataclass
class Preprocessing:
    """How an image becomes the artifact's input tensor."""

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"
    color: str = "RGB"
    scale: str = "pixels / 255"
    resize: str = "shorter side to img_size / 0.875, centre crop"


@dataclass
class Weights:
    """Where the exported weights came from, enough to rebuild the very same reference model."""

    kind: str = "seeded"  # "checkpoint" | "seeded" (no checkpoint: deterministic weights)
    checkpoint: str | None = None  # resolved path of the checkpoint file
    checkpoint_sha256: str | None = None
    seed: int | None = 0
    init: str = "model-init"  # seeded weights' rule: see edgevit.models.build_reference
    state_sha256: str = ""  # hash of the state dict (names, shapes, bytes) that was exported


@dataclass
class FloatNode:
    """A quantizable node of an int8 artifact that stayed float, and the measured costs that decided it."""

    name: str
    kind: str
    reason: str
    int8_ms: float | None = None  # its own cost in int8 (Q/DQ included) and in float, as measured
    float_ms: float | None = None


@dataclass
class MixedPrecision:
    """Latency-aware mixed precision of an int8 artifact (`edgevit.quantize.select`): which nodes stayed
    float and why, the measured whole-model ratio to fp32, and whether int8 was forced although it does
    not pay. Derived from the exporter's `export["int8_selection"]`, which keeps the full trace."""

    runtime: str = ""
    mode: str = ""  # measured | static
    outcome: str = ""  # pays | inconclusive | slower | no node pays | not measured
    forced: bool = False  # --int8-force: shipped although int8 does not pay here
    cost_source: str = ""  # runtime, threads and machine the costs were measured with
    int8_nodes: int = 0
    float_nodes: list[FloatNode] = field(default_factory=list)
    speed: dict[str, Any] = field(default_factory=dict)  # int8 vs fp32: ratio, ci_low, ci_high, rounds, ms
    holdout_cosine: float | None = None
    summary: str = ""  # the export's one line

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MixedPrecision":
        data = dict(data)
        nodes = [_sub(FloatNode, n) for n in data.pop("float_nodes", None) or []]
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}, float_nodes=nodes)

    @classmethod
    def from_selection(cls, sel: dict[str, Any], summary: str = "") -> "MixedPrecision":
        """From a `Selection.as_dict()` (the exporter metadata's `int8_selection`)."""
        speed = {k: v for k, v in (sel.get("speed") or {}).items()
                 if k in ("outcome", "ratio", "ci_low", "ci_high", "rounds", "base_ms", "variant_ms", "note")}
        nodes = [FloatNode(n["name"], n["kind"], n["reason"], n.get("int8_ms"), n.get("float_ms"))
                 for n in sel.get("nodes", []) if not n.get("int8")]
        return cls(runtime=str(sel.get("runtime", "")), mode=str(sel.get("mode", "")),
                   outcome=str(sel.get("outcome", "")), forced=bool(sel.get("forced", False)),
                   cost_source=str(sel.get("cost_source", sel.get("note", ""))),
                   int8_nodes=int(sel.get("int8_node_count", 0)), float_nodes=nodes, speed=speed,
                   holdout_cosine=(sel.get("accuracy") or {}).get("cosine"), summary=summary)


@dataclass
class ArtifactRecord:
    """Everything edgevit knows about one exported artifact (the sidecar JSON, schema 2)."""

    artifact: str  # file (or directory) name of the artifact, beside the sidecar
    model: str
    target: str
    precision: str
    img_size: int
    batch: int = 1
    family: str = ""
    dynamic_batch: bool = False
    num_classes: int = 1000
    input: Preprocessing = field(default_factory=Preprocessing)
    weights: Weights = field(default_factory=Weights)
    opset: int | None = None
    sha256: str = ""
    size_bytes: int = 0
    params: int | None = None
    macs: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    export: dict[str, Any] = field(default_factory=dict)  # the exporter's own facts
    int8_precision: MixedPrecision | None = None  # int8 by measured latency: what stayed float and why
    verification: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    created: str = ""
    command: str | None = None
    schema: str = SCHEMA

    @property
    def random_weights(self) -> bool:
        return self.weights.kind != "checkpoint"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "sidecar") -> "ArtifactRecord":
        """Parse schema 2 or upgrade schema 1; ConfigError (one line) for anything else."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: an artifact record is a JSON object, got {type(data).__name__}")
        schema = data.get("schema", "edgevit.artifact/1")
        if schema == "edgevit.artifact/1":
            data = _upgrade_v1(data)
        elif schema != SCHEMA:
            raise ConfigError(f"{where}: unknown artifact record schema {schema!r} (this edgevit reads {SCHEMA})")
        missing = [k for k in ("artifact", "model", "target", "precision", "img_size") if k not in data]
        if missing:
            raise ConfigError(f"{where}: not an edgevit artifact record (missing {', '.join(missing)})")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        try:
            kw["input"] = _sub(Preprocessing, kw.get("input") or {})
            kw["weights"] = _sub(Weights, kw.get("weights") or {})
            if isinstance(kw.get("int8_precision"), dict):
                kw["int8_precision"] = MixedPrecision.from_dict(kw["int8_precision"])
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed artifact record ({exc})") from None

    def rebuild_reference(self) -> "nn.Module":
        """The PyTorch model this artifact was exported from, rebuilt and checked against its weight hash."""
        from edgevit.models import build_reference, state_dict_sha256

        from edgevit.models._macs import count_params

        w = self.weights
        model = build_reference(self.model, checkpoint=w.checkpoint if w.kind == "checkpoint" else None,
                                img_size=self.img_size, num_classes=self.num_classes, seed=w.seed or 0,
                                **({"init": w.init} if w.init else {}))  # a checkpoint's record has no rule
        if self.params and count_params(model) != self.params:
            raise VerificationError(f"the sidecar of {self.artifact} names model {self.model!r}, but the artifact "
                                    f"has {self.params:,} parameters and {self.model} {count_params(model):,}: "
                                    "the sidecar belongs to another export")
        if w.state_sha256 and state_dict_sha256(model) != w.state_sha256:
            why = ("the checkpoint file changed since the export" if w.kind == "checkpoint"
                   else "this edgevit or torch initialises the seeded weights differently")
            raise VerificationError(f"the rebuilt reference of {self.artifact} has other weights than the "
                                    f"exported model: {why}")
        return model


def _sub(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__.lower()} must be an object")
    known = {f.name for f in fields(cls)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
    return cls(**kw)


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 (before the record existed): `checkpoint` -> `weights`, `size_mb` -> `size_bytes`."""
    out = dict(data)
    ck = out.pop("checkpoint", None) or {}
    if isinstance(ck, dict):
        seeded = ck.get("path") in (None, "random")
        out["weights"] = {
            "kind": "seeded" if seeded else "checkpoint",
            "checkpoint": None if seeded else ck.get("path"),
            "checkpoint_sha256": ck.get("sha256"),
            "seed": ck.get("seed") if seeded else None,
            "init": "model-init",
            "state_sha256": ck.get("weights_sha256") or "",
        }
    if "size_mb" in out:
        out["size_bytes"] = int(round(float(out.pop("size_mb")) * MB))
    out["schema"] = SCHEMA
    return out


def read_record(artifact: str | Path) -> ArtifactRecord | None:
    """The record beside an artifact, or None when there is no sidecar; ConfigError when it is unreadable."""
    side = sidecar_path(artifact)
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {side}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{side} is not valid JSON ({getattr(exc, 'msg', exc)}); re-export the artifact") from None
    return ArtifactRecord.from_dict(data, where=str(side))


def write_record(record: ArtifactRecord, path: str | Path) -> Path:
    """Write the record as JSON atomically (the old file stays whole if the write fails)."""
    return atomic_write_json(path, record.to_dict())


def check_integrity(artifact: str | Path, record: ArtifactRecord) -> None:
    """VerificationError when the artifact's bytes are not the ones the record describes."""
    if not record.sha256:
        return
    got = artifact_sha256(artifact)
    if got != record.sha256:
        raise VerificationError(f"{Path(artifact).name} does not match its sidecar: sha256 {got[:12]}... != "
                                f"recorded {record.sha256[:12]}... (modified or replaced after export)")
