"""Installed package versions, read from distribution metadata (never by importing the package).

Every record edgevit writes names the versions that shape its numbers: published latencies without
the runtime's exact version are irreproducible.
"""
from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

CORE_DISTS = ("edgevit", "numpy", "torch")


def package_version(dist: str) -> str:
    """The installed version of distribution `dist`, or '' when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def package_versions(dists: Iterable[str], *, python: bool = True) -> dict[str, str]:
    """{dist: version} for the installed ones among `dists` (and python's own version)."""
    out = {"python": platform.python_version()} if python else {}
    for dist in dists:
        if dist not in out and (ver := package_version(dist)):
            out[dist] = ver
    return out
