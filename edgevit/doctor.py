"""What this machine can do: every registered target and runtime, available or not, its version, and
why not with the fix. Probes never import a missing package and never raise."""
from __future__ import annotations

import platform
import sys
from typing import Any

from edgevit.backends import Availability, Backend, Runtime


def _safe(probe: Any) -> Availability:
    """A probe that raises is a bug in the probe; report it as unavailable rather than crash doctor."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - doctor must always finish
        return Availability(False, reason=f"probe failed: {type(exc).__name__}: {exc}")


def _target_row(b: Backend) -> dict[str, Any]:
    from edgevit.versions import package_version

    avail = _safe(b.availability)
    rt_avail = _safe(b.runtime.probe) if b.runtime else None
    return {
        "target": b.key, "title": b.title, "available": avail.available,
        "version": avail.version or (package_version(b.requires[0]) if b.requires else ""),
        "reason": avail.reason, "precisions": list(b.precisions), "default_precision": b.default_precision,
        "int8": b.int8, "suffix": b.suffix, "extra": b.extra, "requirement": b.requirement,
        "runtime": b.runtime.key if b.runtime else "",
        "verify": ("runs the artifact" if rt_avail and rt_avail.available
                   else f"not run here ({b.runtime.key} unavailable)" if b.runtime else "no runtime"),
    }


def _runtime_row(r: Runtime) -> dict[str, Any]:
    avail = _safe(r.probe)
    row = {"runtime": r.key, "title": r.title, "available": avail.available, "version": avail.version,
           "reason": avail.reason, "extra": r.extra}
    if avail.available and r.describe is not None:
        row["details"] = _safe_describe(r)
    return row


def _safe_describe(r: Runtime) -> dict[str, Any]:
    try:
        return dict(r.describe())  # type: ignore[misc]
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


def host_facts() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": sys.platform,
                            "machine": platform.machine()}
    try:
        import torch

        from edgevit.backends.torchscript.export import xnnpack_available

        info["torch"] = torch.__version__
        info["xnnpack"] = xnnpack_available()
        info["quantized_engines"] = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        info["cuda"] = bool(torch.cuda.is_available())
    except ImportError:
        info["torch"] = ""
    return info


def collect() -> dict[str, Any]:
    """What doctor reports, as data (its table and `--json` both come from this)."""
    from edgevit.backends import backends, runtimes
    from edgevit.backends._registry import PLUGIN_ERRORS

    return {
        "host": host_facts(),
        "targets": [_target_row(b) for b in backends().values()],
        "runtimes": [_runtime_row(r) for r in runtimes().values()],
        "plugin_errors": dict(PLUGIN_ERRORS),
    }
