"""Benchmark suites (`benchmarks/suites/*.yaml`): models x targets x precisions under one profile.

```yaml
name: smoke
description: what it is for
profile: host            # device profile (a CLI --device overrides it)
threads: 2               # optional: overrides the profile's threads
reference: true          # add the @reference case (needed to compare across machines)
protocol: {warmup: 5, warmup_seconds: 0.2, runs: 40, min_seconds: 0.5}
cases:
  - models: [cas_vit_xs]
    precisions: [fp32, int8]
    runtime: onnxruntime # optional; default: the profile's
    batch: [1]           # optional; default: the profile's
    img_size: 224        # optional
  - artifacts: [path/relative/to/the/suite.onnx]
```
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgevit.bench.protocol import Protocol, protocol_from
from edgevit.errors import ConfigError

_TOP = {"name": str, "description": str, "profile": str, "threads": int, "reference": bool, "protocol": dict,
        "cases": list}
_GROUP = {"models": list, "artifacts": list, "precisions": list, "runtime": str, "batch": list, "img_size": int,
          "targets": list}


@dataclass
class CaseGroup:
    models: list[str] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    precisions: list[str] = field(default_factory=list)
    runtime: str | None = None
    batch: list[int] = field(default_factory=list)
    img_size: int | None = None


@dataclass
class Suite:
    name: str
    path: Path
    groups: list[CaseGroup]
    description: str = ""
    profile: str = "host"
    threads: int | None = None
    reference: bool = False
    protocol: Protocol = field(default_factory=Protocol)


def _check(where: str, data: dict[str, Any], schema: dict[str, type]) -> None:
    for key, value in data.items():
        if key not in schema:
            raise ConfigError(f"{where}: unknown field {key!r}; allowed: {', '.join(schema)}")
        if isinstance(value, bool) and schema[key] is not bool or not isinstance(value, schema[key]):
            raise ConfigError(f"{where}: field {key!r} must be {schema[key].__name__}, got {value!r}")


PACKAGED_SUITES = Path(__file__).resolve().parents[1] / "suites"  # shipped in the wheel


def suite_path(name_or_path: str | Path) -> Path:
    """A suite file, or the name of a suite edgevit ships (`paper`, `smoke`)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = PACKAGED_SUITES / f"{p.stem}.yaml"
    if p.suffix in ("", ".yaml", ".yml") and len(p.parts) <= 1 and shipped.is_file():
        return shipped
    if p.suffix in ("", ".yaml", ".yml") and p.parts[:-1] == ("benchmarks", "suites") and shipped.is_file():
        return shipped  # the repository path of a shipped suite, used outside a checkout
    known = ", ".join(sorted(f.stem for f in PACKAGED_SUITES.glob("*.yaml")))
    raise ConfigError(f"suite {str(name_or_path)!r} not found (a YAML file, or one of the shipped suites: {known})")


def load_suite(path: str | Path) -> Suite:
    import yaml

    p = suite_path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read suite {p}: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{p}: not valid YAML") from None
    where = str(p)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a suite is a mapping with 'name' and 'cases'")
    _check(where, data, _TOP)
    if not data.get("cases"):
        raise ConfigError(f"{where}: 'cases' must list at least one group of models or artifacts")
    try:
        protocol = Protocol.from_dict(data.get("protocol") or {})
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: protocol: {exc}") from None
    groups = []
    for i, raw in enumerate(data["cases"]):
        gwhere = f"{where} cases[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{gwhere}: a case group is a mapping (models/artifacts, precisions, ...)")
        _check(gwhere, raw, _GROUP)
        if not raw.get("models") and not raw.get("artifacts"):
            raise ConfigError(f"{gwhere}: give 'models' or 'artifacts'")
        if raw.get("targets"):
            raise ConfigError(f"{gwhere}: use 'runtime' (the target follows from it) rather than 'targets'")
        groups.append(CaseGroup(
            models=[str(m) for m in raw.get("models", [])],
            artifacts=[(p.parent / a).resolve() for a in raw.get("artifacts", [])],
            precisions=[str(x) for x in raw.get("precisions", [])], runtime=raw.get("runtime"),
            batch=[int(b) for b in raw.get("batch", [])], img_size=raw.get("img_size"),
        ))
    return Suite(name=data.get("name") or p.stem, path=p, groups=groups, description=data.get("description", ""),
                 profile=data.get("profile", "host"), threads=data.get("threads"),
                 reference=bool(data.get("reference", False)), protocol=protocol)


def run_suite(path: str | Path, *, profile: str | None = None, threads: int | None = None,
              runtime: str | None = None, protocol: dict[str, Any] | None = None, strict: bool = False,
              progress: bool = False, cache_root: Path | None = None,
              options: dict[str, Any] | None = None, executor: Any = None) -> "Any":
    """Plan every group of a suite, then run all cases in one pass (one fresh process each).

    `profile`, `threads` and `runtime` given here override the suite's; the suite's `threads` belong to
    its own profile, so another profile runs with that profile's threads unless `threads` says otherwise.
    `executor`: where the cases run (default this machine; a board: `edgevit.bench.remote`).
    """
    from edgevit.bench.api import run_plan

    suite = load_suite(path)
    merged = plan_suite(suite, profile=profile, threads=threads, runtime=runtime, strict=strict,
                        cache_root=cache_root, options=options, executor=executor)
    return run_plan(merged, protocol_from(suite.protocol, **(protocol or {})), progress=progress, suite=suite.name)


def plan_suite(suite: Suite, *, profile: str | None = None, threads: int | None = None,
               runtime: str | None = None, strict: bool = False, cache_root: Path | None = None,
               options: dict[str, Any] | None = None, executor: Any = None) -> "Any":
    """One Plan for every group of a suite (exports happen here, cached); see `run_suite`."""
    from edgevit.bench.api import Plan, plan

    path = suite.path
    own_profile = profile is None or profile == suite.profile
    if threads is None:
        threads = suite.threads if own_profile else None
    merged: Plan | None = None
    for i, g in enumerate(suite.groups):
        p = plan([*g.models, *map(str, g.artifacts)], profile=profile or suite.profile, runtime=runtime or g.runtime,
                 precision=g.precisions or None, threads=threads, batch=g.batch or None,
                 img_size=g.img_size, strict=strict, reference=suite.reference and i == 0, cache_root=cache_root,
                 options=options, executor=executor)
        if merged is None:
            merged = p
            continue
        merged.cases += p.cases
        merged.warnings += [w for w in p.warnings if w not in merged.warnings]
        merged.runtimes += [r for r in p.runtimes if r not in merged.runtimes]
        merged.precisions = sorted(set(merged.precisions) | set(p.precisions))
        merged.batch = sorted(set(merged.batch) | set(p.batch))
    assert merged is not None
    ids = [c.id for c in merged.cases]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup:
        raise ConfigError(f"{path}: case {dup!r} appears twice")
    return merged
