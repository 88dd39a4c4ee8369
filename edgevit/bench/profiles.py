"""Device profiles (`device_profiles/*.yaml`): load, validate with one-line ConfigErrors, detect the host.

A profile says what a device is (architecture, cores, frequency, memory), how to measure on it
(threads, runtime, precisions, batch sizes), how tight its latency gate is, and which published
latencies exist for it. `host` is special: its `auto` fields are filled from this machine.

Validation is strict on purpose: an unknown key or a wrong type is an error naming the file and
field, because a typo in a profile silently changes what a benchmark measures.
"""
from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edgevit.backends.base import PRECISIONS
from edgevit.errors import ConfigError

AUTO = "auto"
KNOWN_ARCHS = ("armv7l", "aarch64", "x86_64", "arm64")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

# ARM "CPU part" codes in /proc/cpuinfo (ARM Ltd. implementer 0x41): ARM boards name no model.
ARM_PARTS = {
    "0xc07": "Cortex-A7", "0xc09": "Cortex-A9", "0xc0d": "Cortex-A17", "0xc0e": "Cortex-A17",
    "0xc0f": "Cortex-A15", "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd4b": "Cortex-A78C",
}


@dataclass(frozen=True)
class Reference:
    """A published latency for one model on this device (batch 1 unless said otherwise)."""

    model: str
    latency_ms: float
    threads: int | None = None
    batch: int = 1
    memory_mb: float | None = None
    source: str = ""


@dataclass(frozen=True)
class GateSettings:
    """How tight the CI latency gate is on this device: relative tolerance plus an absolute floor."""

    rel_tolerance: float = 0.10
    abs_floor_ms: float = 0.5
    statistic: str = "median"  # median | p25 | p10: what the gate compares (see edgevit.bench.regress)
    normalize: str = "auto"  # auto (across machines) | always (shared, drifting machines) | never
    # against a stored baseline (another time, maybe another machine) when that needs a wider band than
    # the paired gate (edgevit.bench.paired_gate); None: rel_tolerance
    baseline_tolerance: float | None = None
    pairs: int = 8  # paired gate: pairs of fresh processes per case before the first verdict
    max_pairs: int = 24  # and at most, while a case stays inconclusive


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    title: str
    arch: str
    cpu: str
    cores: int
    threads: int
    runtime: str
    precisions: tuple[str, ...]
    batch: tuple[int, ...] = (1,)
    isa: str = ""
    frequency_ghz: float | None = None
    memory_gb: float | None = None
    gpu: str = ""
    fallback_runtimes: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()  # the runtimes `--runtime auto` measures here (default: every CPU runtime)
    runtime_options: dict[str, Any] = field(default_factory=dict)  # e.g. ncnn {powersave: 2} on big.LITTLE
    gate: GateSettings = field(default_factory=GateSettings)
    references: tuple[Reference, ...] = ()
    predict_board: str = ""  # board id of the published latency tables its predictor is fitted on (edgevit predict)
    notes: str = ""
    path: str = ""
    detected: bool = False  # True when the fields describe this machine (the `host` profile)

    def reference(self, model: str, batch: int = 1) -> Reference | None:
        return next((r for r in self.references if r.model == model and r.batch == batch), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- validation helpers
_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {  # key -> (types, required)
    "name": (str, True), "title": (str, False), "arch": (str, True), "cpu": (str, True),
    "isa": (str, False), "cores": (int, True), "threads": (int, True), "frequency_ghz": ((int, float), False),
    "memory_gb": ((int, float), False), "gpu": (str, False), "runtime": (str, True),
    "fallback_runtimes": (list, False), "candidates": (list, False), "precisions": (list, True),
    "batch": (list, False),
    "runtime_options": (dict, False), "gate": (dict, False), "references": (list, False), "notes": (str, False),
    "predict_board": (str, False),
}
_REF_FIELDS = {"model": str, "latency_ms": (int, float), "threads": int, "batch": int,
               "memory_mb": (int, float), "source": str}
_GATE_FIELDS = {"rel_tolerance": (int, float), "abs_floor_ms": (int, float), "statistic": str, "normalize": str,
                "baseline_tolerance": (int, float), "pairs": int, "max_pairs": int}


def _runtime_keys() -> list[str]:
    """Runtime keys a profile may name: every registered backend's runtime."""
    from edgevit.backends import runtimes

    return sorted(runtimes())


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _check_type(where: str, key: str, value: Any, types: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise _err(where, f"field {key!r} must be {names}, got {type(value).__name__} {value!r}")


def _positive(where: str, key: str, value: float) -> None:
    if value <= 0:
        raise _err(where, f"field {key!r} must be > 0, got {value}")


def _unknown(where: str, keys: Any, allowed: Any, what: str = "field") -> None:
    extra = sorted(set(keys) - set(allowed))
    if extra:
        raise _err(where, f"unknown {what} {extra[0]!r}; allowed: {', '.join(sorted(allowed))}")


def validate_profile(data: Any, where: str, *, host: "HostInfo | None" = None) -> DeviceProfile:
    """Turn parsed YAML into a DeviceProfile, or raise a one-line ConfigError naming file and field.

    `auto` values (only meaningful in the host profile) are filled from `host` (detected if None).
    """
    if not isinstance(data, dict):
        raise _err(where, f"a profile is a mapping of fields, got {type(data).__name__}")
    _unknown(where, data, _FIELDS)
    for key, (_, required) in _FIELDS.items():
        if required and key not in data:
            raise _err(where, f"missing required field {key!r}")
    data = dict(data)
    detected = any(v == AUTO for k, v in data.items() if k != "runtime")
    if detected:
        h = host or detect_host()
        fill = {"arch": h.arch, "cpu": h.cpu, "cores": h.cores, "threads": min(4, h.cores),
                "frequency_ghz": h.frequency_ghz, "memory_gb": h.memory_gb}
        for key, value in list(data.items()):
            if value == AUTO and key != "runtime":  # runtime auto means: choose by measurement
                if key not in fill:
                    raise _err(where, f"field {key!r} cannot be 'auto'")
                data[key] = fill[key]
    for key, (types, _) in _FIELDS.items():
        if key in data and data[key] is not None:
            _check_type(where, key, data[key], types)
    name = data["name"]
    if not _NAME_RE.match(name):
        raise _err(where, f"name {name!r} must be lowercase letters, digits, '-', '_' or '.'")
    stem = Path(where).stem
    if where.endswith((".yaml", ".yml")) and stem != name:
        raise _err(where, f"name {name!r} must match the file name {stem!r}")
    if data["arch"] not in KNOWN_ARCHS:
        raise _err(where, f"arch {data['arch']!r} is not one of {', '.join(KNOWN_ARCHS)}")
    for key in ("cores", "threads", "frequency_ghz", "memory_gb"):
        if data.get(key) is not None:
            _positive(where, key, data[key])
    if data["threads"] > 4 * data["cores"]:
        raise _err(where, f"threads ({data['threads']}) is more than 4x cores ({data['cores']})")
    known = _runtime_keys()
    fallbacks = data.get("fallback_runtimes") or []
    candidates = data.get("candidates") or []
    runtime_ok = [*known, "auto"]
    for what, rt, allowed in (("runtime", data["runtime"], runtime_ok),
                              *(("fallback runtime", f, known) for f in fallbacks),
                              *(("candidate runtime", c, known) for c in candidates)):
        if rt not in allowed:
            raise _err(where, f"{what} {rt!r} is not one of {', '.join(allowed)}")
    precisions = data["precisions"]
    if not precisions:
        raise _err(where, f"field 'precisions' must list at least one of {', '.join(PRECISIONS)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise _err(where, f"precision {p!r} is not one of {', '.join(PRECISIONS)}")
    batch = data.get("batch") or [1]
    for b in batch:
        _check_type(where, "batch", b, int)
        _positive(where, "batch", b)
    gate_raw = data.get("gate") or {}
    _unknown(where, gate_raw, _GATE_FIELDS, "gate field")
    for key, types in _GATE_FIELDS.items():
        if key in gate_raw:
            _check_type(where, f"gate.{key}", gate_raw[key], types)
    if gate_raw.get("statistic", "median") not in ("median", "p25", "p10"):
        raise _err(where, f"gate.statistic must be median, p25 or p10, got {gate_raw['statistic']!r}")
    if gate_raw.get("normalize", "auto") not in ("auto", "always", "never"):
        raise _err(where, f"gate.normalize must be auto, always or never, got {gate_raw['normalize']!r}")
    gate = GateSettings(**{k: v if k in ("statistic", "normalize", "pairs", "max_pairs") else float(v)
                           for k, v in gate_raw.items()})
    for key in ("rel_tolerance", "baseline_tolerance"):
        value = getattr(gate, key)
        if value is not None and not 0 < value < 5:
            raise _err(where, f"gate.{key} must be in (0, 5), got {value}")
    if not 6 <= gate.pairs <= gate.max_pairs:
        raise _err(where, f"gate.pairs must be >= 6 (the signed-rank interval needs 6) and <= gate.max_pairs, "
                   f"got {gate.pairs} and {gate.max_pairs}")
    if gate.abs_floor_ms < 0:
        raise _err(where, f"gate.abs_floor_ms must be >= 0, got {gate.abs_floor_ms}")
    board = data.get("predict_board") or ""
    if board:
        from edgevit.predict.data import board_ids

        if board not in board_ids():
            raise _err(where, f"predict_board {board!r} has no published tables; known: {', '.join(board_ids())}")
    refs = []
    for i, raw in enumerate(data.get("references") or []):
        rwhere = f"{where} references[{i}]"
        if not isinstance(raw, dict):
            raise _err(rwhere, "a reference is a mapping (model, latency_ms, ...)")
        _unknown(rwhere, raw, _REF_FIELDS)
        for key in ("model", "latency_ms"):
            if key not in raw:
                raise _err(rwhere, f"missing required field {key!r}")
        for key, types in _REF_FIELDS.items():
            if key in raw:
                _check_type(rwhere, key, raw[key], types)
        _positive(rwhere, "latency_ms", raw["latency_ms"])
        refs.append(Reference(**raw))
    return DeviceProfile(
        name=name, title=data.get("title") or name, arch=data["arch"], cpu=data["cpu"],
        isa=data.get("isa") or "", cores=data["cores"], threads=data["threads"],
        frequency_ghz=data.get("frequency_ghz"), memory_gb=data.get("memory_gb"), gpu=data.get("gpu") or "",
        runtime=data["runtime"], fallback_runtimes=tuple(fallbacks), candidates=tuple(candidates),
        precisions=tuple(precisions),
        runtime_options=dict(data.get("runtime_options") or {}),
        batch=tuple(batch), gate=gate, references=tuple(refs), predict_board=board,
        notes=(data.get("notes") or "").strip(),
        path=where, detected=detected,
    )


# ---------------------------------------------------------------- discovery and loading
PACKAGED_PROFILES = Path(__file__).resolve().parents[1] / "device_profiles"  # shipped in the wheel


def profile_dirs() -> list[Path]:
    """Where profiles are looked up: $EDGEVIT_PROFILES, ./device_profiles, then the ones edgevit ships."""
    dirs = []
    if env := os.environ.get("EDGEVIT_PROFILES"):
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(Path.cwd() / "device_profiles")
    dirs.append(PACKAGED_PROFILES)
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.append(d.resolve())
    return seen


def profile_files() -> dict[str, Path]:
    """Profile name -> file; earlier directories win."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        for f in sorted(d.glob("*.y*ml")):
            found.setdefault(f.stem, f)
    return found


def load_profile_file(path: Path, *, host: "HostInfo | None" = None) -> DeviceProfile:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read profile {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{at}") from None
    return validate_profile(data, str(path), host=host)


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """A profile by name (`arm-a17`) or by path to a YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        return load_profile_file(Path(text))
    files = profile_files()
    if text not in files:
        import difflib

        close = difflib.get_close_matches(text, list(files), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown device profile {text!r}{hint}; known: {', '.join(sorted(files)) or 'none'}")
    return load_profile_file(files[text])


def list_profiles() -> list[DeviceProfile]:
    return [load_profile_file(p) for _, p in sorted(profile_files().items())]


# ---------------------------------------------------------------- host detection
@dataclass(frozen=True)
class HostInfo:
    """This machine, as every result records it."""

    hostname: str
    os: str
    arch: str
    cpu: str
    cores: int  # usable logical CPUs (affinity mask)
    physical_cores: int | None
    frequency_ghz: float | None
    memory_gb: float | None
    python: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """What identifies 'the same machine' for the regression gate."""
        return f"{self.cpu}|{self.arch}|{self.cores}"


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return info
    parts: list[str] = []
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            info.setdefault(key.strip().lower(), value.strip())
            if key.strip().lower() == "cpu part" and value.strip().lower() not in parts:
                parts.append(value.strip().lower())
    info["cpu parts"] = " ".join(parts)  # every core type, in order (big.LITTLE has two)
    return info


def _cpu_name(info: dict[str, str]) -> str:
    # ARM cores by their part code first: 32-bit kernels print a generic "model name: ARMv7 Processor
    # rev 1 (v7l)" and "Hardware" names the SoC, neither the core; big.LITTLE lists both core types.
    names = [ARM_PARTS[p] for p in info.get("cpu parts", "").split() if p in ARM_PARTS]
    if info.get("cpu implementer", "").lower() == "0x41" and names:
        return " + ".join(names)
    for key in ("model name", "hardware", "cpu model", "processor"):
        value = info.get(key, "")
        if value and not value.isdigit():
            return value
    part = info.get("cpu part", "").lower()
    if part in ARM_PARTS:
        return ARM_PARTS[part]
    return platform.processor() or platform.machine() or "unknown"


def _frequency_ghz(info: dict[str, str]) -> float | None:
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()
        return round(int(khz) / 1e6, 2)
    except (OSError, ValueError):
        pass
    try:
        import psutil

        freq = psutil.cpu_freq()
        if freq and (freq.max or freq.current):
            return round((freq.max or freq.current) / 1000, 2)
    except Exception:  # psutil is optional and raises platform-specific errors
        pass
    mhz = info.get("cpu mhz")
    return round(float(mhz) / 1000, 2) if mhz else None


def _memory_gb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def detect_host() -> HostInfo:
    """CPU model, usable cores, frequency, memory, OS and architecture of this machine."""
    info = _cpuinfo()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    arch = platform.machine() or "unknown"
    return HostInfo(
        hostname=platform.node(), os=f"{platform.system()} {platform.release()}", arch=arch,
        cpu=_cpu_name(info), cores=cores, physical_cores=physical, frequency_ghz=_frequency_ghz(info),
        memory_gb=_memory_gb(), python=platform.python_version(),
    )


def load_average() -> tuple[float, float, float] | None:
    """1/5/15-minute load average: the context of every measurement on a shared machine."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def host_mismatches(profile: DeviceProfile, host: HostInfo) -> list[str]:
    """Why this machine is not the profile's device (empty when it is, or for the host profile)."""
    if profile.detected:
        return []
    out = []
    arch = {"arm64": "aarch64"}.get(host.arch, host.arch)
    if arch != {"arm64": "aarch64"}.get(profile.arch, profile.arch):
        out.append(f"arch {host.arch} is not {profile.arch}")
    if profile.cpu.lower() not in host.cpu.lower() and not profile.cpu.startswith("any"):
        out.append(f"CPU {host.cpu!r} is not {profile.cpu}")
    if host.cores < profile.cores:
        out.append(f"{host.cores} usable cores < the device's {profile.cores}")
    if profile.gpu and not _has_nvidia():
        out.append(f"no NVIDIA GPU here (the device has {profile.gpu})")
    return out


def describe_profile(p: DeviceProfile, host: HostInfo) -> list[str]:
    """A profile in plain lines for people (no Python reprs)."""
    g = p.gate
    lines = [
        f"[bold]{p.name}[/]: {p.title}",
        f"  device: {p.cpu} x{p.cores}, {p.arch}" + (f", {p.isa}" if p.isa else "")
        + (f", {p.frequency_ghz:g} GHz" if p.frequency_ghz else "") + (f", {p.memory_gb:g} GB" if p.memory_gb else "")
        + (f", GPU {p.gpu}" if p.gpu else ""),
        f"  measures with: {p.runtime}" + (f" (fallback {', '.join(p.fallback_runtimes)})" if p.fallback_runtimes
                                           else "") + f", {p.threads} threads, precisions {', '.join(p.precisions)}, "
        f"batch {', '.join(map(str, p.batch))}",
        f"  latency gate: {g.rel_tolerance:.0%} tolerance + {g.abs_floor_ms:g} ms floor on the {g.statistic}, "
        f"normalise {g.normalize}",
    ]
    if p.candidates:
        lines.append(f"  --runtime auto measures: {', '.join(p.candidates)}")
    if p.runtime_options:
        lines.append("  runner options: " + ", ".join(f"{k}={v}" for k, v in p.runtime_options.items()))
    for r in p.references:
        lines.append(f"  published: {r.model} {r.latency_ms:g} ms (batch {r.batch}, {r.threads or '?'} threads"
                     + (f", {r.memory_mb:g} MB" if r.memory_mb else "") + f") - {r.source}")
    if p.notes:
        lines.append(f"  notes: {p.notes}")
    mism = host_mismatches(p, host)
    lines.append(f"  this machine: {'yes' if not mism else 'no (' + '; '.join(mism) + ')'}")
    lines.append(f"  file: {p.path}")
    return lines


def _has_nvidia() -> bool:
    return Path("/proc/driver/nvidia/version").exists()
