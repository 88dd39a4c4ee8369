"""The two sides of the paired gate: head's artifacts (this edgevit plans the suite) and the base's.

The base is either a folder of artifacts (exported earlier by the base code, e.g. with
`benchmarks/export_suite.py`, or copied from a previous CI run), matched to head's cases by case id
(`model/runtime/precision/bN/tN`, the model named by each artifact's sidecar record or file name), or
a git ref of the repository in the current directory: that ref is checked out into a temporary
`git worktree` and *its own* edgevit exports the suite in a subprocess (`edgevit bench --suite ...
--runs 1 --json`), so the base artifacts are what the base code produces. Exports go into the shared
cache, keyed by the source that shapes them, so an unchanged model is not exported twice.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgevit.bench.paired_gate import Side
from edgevit.errors import ConfigError

if TYPE_CHECKING:
    from edgevit.bench.api import Plan
    from edgevit.bench.suites import Suite

# Runs the base's CLI from its worktree, and refuses to if another edgevit would be imported instead.
_BASE_CLI = (
    "import os, sys\n"
    "root = os.path.realpath(sys.argv[1])\n"
    "import edgevit\n"
    "if not os.path.realpath(edgevit.__file__).startswith(root + os.sep):\n"
    "    sys.exit('edgevit was imported from ' + edgevit.__file__ + ', not from the base worktree')\n"
    "from edgevit.cli import main\n"
    "sys.argv = ['edgevit', *sys.argv[2:]]\n"
    "main()\n"
)
EXPORT_TIMEOUT_S = 3600.0


def head_side(suite: "Suite", *, profile: str | None = None, threads: int | None = None,
              cache_root: Path | None = None) -> tuple[Side, "Plan"]:
    """Head's cases: the suite planned (and exported, cached) by this edgevit; no @reference case."""
    from edgevit.bench.suites import plan_suite

    plan = plan_suite(suite, profile=profile, threads=threads, cache_root=cache_root)
    cases = {c.id: c for c in plan.cases if not c.reference}
    notes = ["the @reference case is left out: base and head are measured on this machine in the same job"] \
        if len(cases) < len(plan.cases) else []
    return Side(f"head ({_describe_checkout()})", cases, notes + plan.warnings), plan


def base_side(base: str | Path, suite: "Suite", plan: "Plan", *, cache_root: Path | None = None) -> Side:
    """The base's cases: from a folder of artifacts, or exported by the code at a git ref."""
    path = Path(base)
    if path.is_dir():
        return from_folder(path, plan)
    if path.exists():
        raise ConfigError(f"--base {base}: a file; give a folder of base artifacts or a git ref")
    return from_git_ref(str(base), suite, cache_root=cache_root)


# ---------------------------------------------------------------- a folder
def from_folder(folder: Path, plan: "Plan") -> Side:
    """Every artifact in `folder` (by the registered targets' suffixes), as cases with head's settings."""
    from edgevit.backends import artifact_suffixes
    from edgevit.bench.api import plan as make_plan

    suffixes = artifact_suffixes()
    files = sorted(p for p in folder.iterdir() if p.name.endswith(suffixes) and not p.name.startswith("."))
    if not files:
        raise ConfigError(f"--base {folder}: no artifacts in it (files ending in {', '.join(suffixes)})")
    base = make_plan(files, profile=plan.profile, threads=plan.threads)
    return Side(f"base folder {folder}", {c.id: c for c in base.cases})


# ---------------------------------------------------------------- a git ref
def _git(args: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError:
        raise ConfigError("--base REF needs git on PATH (or give a folder of base artifacts)") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise ConfigError(f"{what}: {why}")
    return done.stdout.strip()


def _describe_checkout() -> str:
    """'abc1234' / 'abc1234 + local changes' for the checkout in the current directory, else 'this edgevit'."""
    try:
        sha = _git(["rev-parse", "--short", "HEAD"], Path.cwd(), "git")
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], Path.cwd(), "git")
    except ConfigError:
        return "this edgevit"
    return sha + (" + local changes" if dirty else "")


def from_git_ref(ref: str, suite: "Suite", *, cache_root: Path | None = None) -> Side:
    """Check `ref` out into a temporary worktree, let its edgevit export the suite, read the case list."""
    from edgevit import progress

    repo = Path(_git(["rev-parse", "--show-toplevel"], Path.cwd(), f"--base {ref}: the current directory is not "
                     "in a git repository (give a folder of base artifacts instead)"))
    sha = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo,
               f"--base {ref}: no such commit in {repo} (fetch it, e.g. `git fetch origin {ref}`, or check out "
               "with fetch-depth: 0)")
    with tempfile.TemporaryDirectory(prefix="edgevit-base-") as tmp:
        tree = Path(tmp) / "tree"
        _git(["worktree", "add", "--detach", "--quiet", str(tree), sha], repo, f"--base {ref}: git worktree add")
        try:
            if not (tree / "edgevit" / "__init__.py").is_file():
                raise ConfigError(f"--base {ref}: {sha[:10]} has no edgevit package at the repository root")
            with progress.step(f"base {ref} ({sha[:10]}): exporting the suite with its own edgevit"):
                results = _export_with(tree, suite, Path(tmp), cache_root)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo, capture_output=True, check=False)
            shutil.rmtree(tree, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True, check=False)
    cases = {c.case.id: c.case for r in results for c in r.cases if not c.case.reference}
    failed = sorted({c.case.id for r in results for c in r.cases if not c.ok and not c.case.reference})
    notes = [f"base {ref} = {sha[:10]}, exported by its own edgevit"]
    if failed:
        notes.append(f"cases the base's edgevit could not run: {', '.join(failed)}")
    return Side(f"base {ref} ({sha[:10]})", cases, notes)


def _export_with(tree: Path, suite: "Suite", tmp: Path, cache_root: Path | None) -> list[Any]:
    """The base's bench results for the suite (one run; per model if the suite as a whole fails, so a
    model the base does not have yet only drops its own cases)."""
    out = tmp / "base.json"
    done = _base_bench(tree, suite.path, out, cache_root)
    if out.is_file():
        return [_load(out)]
    parts = _split_suite(suite, tmp)
    results = []
    for part in parts:
        part_out = part.with_suffix(".json")
        _base_bench(tree, part, part_out, cache_root)
        if part_out.is_file():
            results.append(_load(part_out))
    if not results:
        raise ConfigError(f"the base's edgevit could not export {suite.path.name}: {done}")
    return results


def _base_bench(tree: Path, suite_file: Path, out: Path, cache_root: Path | None) -> str:
    """Run `edgevit bench --suite` of the base tree (one timed run per case); '' or its last error line."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEVIT_DEBUG",)}
    env["PYTHONPATH"] = str(tree)  # the base's edgevit, never this one
    if cache_root is not None:
        env["EDGEVIT_CACHE"] = str(cache_root)
    cmd = [sys.executable, "-c", _BASE_CLI, str(tree), "bench", "--suite", str(suite_file.resolve()),
           "--runs", "1", "--warmup", "0", "--min-seconds", "0", "--json", str(out)]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {EXPORT_TIMEOUT_S:.0f} s"
    if done.returncode == 0:
        return ""
    lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit {done.returncode}"


def _load(path: Path) -> Any:
    from edgevit.bench.api import load_results

    return load_results(path)


def _split_suite(suite: "Suite", tmp: Path) -> list[Path]:
    """One suite file per model (and one per artifact group), with absolute artifact paths."""
    import yaml

    from edgevit.files import atomic_write_text

    parts = []
    for i, g in enumerate(suite.groups):
        group: dict[str, Any] = {k: v for k, v in (("precisions", g.precisions), ("runtime", g.runtime),
                                                   ("batch", g.batch), ("img_size", g.img_size)) if v}
        singles = [{"models": [m]} for m in g.models] + ([{"artifacts": [str(a) for a in g.artifacts]}]
                                                          if g.artifacts else [])
        for j, what in enumerate(singles):
            doc = {"name": suite.name, "profile": suite.profile, "protocol": {"runs": 1},
                   "cases": [{**what, **group}]}
            if suite.threads is not None:
                doc["threads"] = suite.threads
            parts.append(atomic_write_text(tmp / f"part{i}_{j}.yaml", yaml.safe_dump(doc)))
    return parts
