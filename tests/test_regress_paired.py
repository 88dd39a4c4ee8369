"""The paired gate: the verdict rule on known intervals, the noise models on simulated pair ratios (false
alarms and power), the sequential schedule, measuring with an executor, and the CLI end to end on tiny ONNX
models (a base folder vs head's suite; a git ref exported by that ref's own edgevit)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgevit.bench import paired_gate as pg
from edgevit.bench.runner import Case, CaseResult
from edgevit.bench.synthetic import conv_stack
from edgevit.bench.verdict import NOISE_MODELS, Deterministic, Interval, Rule, SignedRank, decide
from edgevit.cli import app
from edgevit.errors import ConfigError

RULE = Rule(0.05)


# ---------------------------------------------------------------- the rule
@pytest.mark.parametrize("iv, verdict, words", [
    (Interval(1.10, 1.06, 1.14, "x", 8), "regression", "slower by 10.0%"),
    (Interval(1.10, 0.98, 1.14, "x", 8), "inconclusive", "cannot tell it from no change"),
    (Interval(1.01, 0.97, 1.05, "x", 8), "ok", ""),
    (Interval(1.03, 1.01, 1.05, "x", 8), "ok", "within the 5% tolerance"),  # real but small
    (Interval(1.00, 0.85, 1.18, "x", 8), "inconclusive", "too noisy to rule out a 10% regression"),
    (Interval(1.00, 0.0, math.inf, "x", 4), "inconclusive", "infinity"),
    (Interval(0.80, 0.75, 0.85, "x", 8), "improvement", "faster by 20.0%"),
    (Interval(0.97, 0.95, 0.99, "x", 8), "ok", ""),  # faster, but within the tolerance
])
def test_decide(iv, verdict, words):
    got, note = decide(iv, RULE)
    assert got == verdict and words in note


def test_floor_keeps_tiny_cases_ok():
    # 2x slower, but 0.1 ms -> 0.2 ms is below a 0.5 ms floor
    assert decide(Interval(2.0, 1.9, 2.1, "x", 8), Rule(0.05, floor_ms=0.5), base_ms=0.1)[0] == "ok"
    assert decide(Interval(2.0, 1.9, 2.1, "x", 8), Rule(0.05, floor_ms=0.5), base_ms=10)[0] == "regression"
    with pytest.raises(ConfigError, match="tolerance"):
        Rule(0.0)


def test_deterministic_model_is_the_predicted_mode_seam():
    """A predicted or counted ratio carries no sampling noise: one ratio decides (issue 17's predicted mode)."""
    model = Deterministic(margin=0.01)
    assert decide(model.interval([1.08]), RULE)[0] == "regression"
    assert decide(model.interval([1.02]), RULE)[0] == "ok"
    assert decide(model.interval([0.5]), RULE)[0] == "improvement"


def test_judge_ratios_reports_a_predicted_mode_like_the_measured_one():
    from edgevit.bench.paired_report import paired_markdown

    cases = pg.judge_ratios({"fcaformer_l1/ncnn/fp32/b1/t4": [1.31], "cas_vit_xs/ncnn/fp32/b1/t4": [1.0]},
                            rule=RULE, noise=Deterministic(0.0), base_ms={"fcaformer_l1/ncnn/fp32/b1/t4": 312.0})
    assert [c.verdict for c in cases] == ["regression", "ok"] and cases[0].pairs == 1
    report = pg.PairedReport(cases, 0.05, 0.0, 0.95, "deterministic", "predicted", "base abc", "head", "arm-a17",
                             "predicted for arm-a17", {}, mode="predicted")
    assert report.failed and [c.id for c in report.failing] == ["fcaformer_l1/ncnn/fp32/b1/t4"]
    assert "❌ latency regression" in paired_markdown(report)


def test_signed_rank_interval_is_exact():
    # n=8: P(T <= 3) = 5/256 <= 0.025 < P(T <= 4), so the 95% interval is the 4th and 33rd of 36 Walsh averages
    ratios = [1.0 + 0.01 * i for i in range(8)]
    iv = SignedRank().interval(ratios)
    logs = np.log(ratios)
    walsh = sorted((logs[i] + logs[j]) / 2 for i in range(8) for j in range(i, 8))
    assert iv.low == pytest.approx(math.exp(walsh[3])) and iv.high == pytest.approx(math.exp(walsh[32]))
    assert SignedRank().interval([1.1] * 5).high == math.inf  # 5 pairs cannot reach 95%


@pytest.mark.parametrize("name", list(NOISE_MODELS))
def test_noise_models_cover_the_truth(name):
    rng = np.random.default_rng(7)
    model = NOISE_MODELS[name]
    cover = sum(model.interval(list(np.exp(0.05 * rng.standard_normal(12))), seed=i).low <= 1
                <= model.interval(list(np.exp(0.05 * rng.standard_normal(12))), seed=i).high for i in range(200))
    assert cover / 200 >= (0.85 if name == "bootstrap" else 0.92)  # the bootstrap under-covers at small n


def _sim(truth: float, sd: float, n: int, rng: np.random.Generator, outliers: float = 0.0) -> list[float]:
    logs = math.log(truth) + sd * rng.standard_normal(n)
    hit = rng.random(n) < outliers  # a burst of load hits one side of a pair: +-30%
    logs[hit] += rng.choice([-0.3, 0.3], size=hit.sum())
    return list(np.exp(logs))


@pytest.mark.parametrize("outliers", [0.0, 0.1])
def test_shipped_rule_on_simulated_noise(outliers):
    """Pair ratios with 3% noise (hog on one core, measured here: gate_power.md) and 10% of pairs hit by
    bursts: false alarms <= 1/20 and a 10% slowdown caught >= 19/20, as the issue asks of the real gate."""
    rng = np.random.default_rng(1 if outliers else 2)
    sims = 200

    def rate(truth: float, verdict: str) -> float:
        return sum(pg.replay(_sim(truth, 0.03, 24, rng, outliers), rule=RULE, noise=pg.DEFAULT_NOISE)[0] == verdict
                   for _ in range(sims)) / sims

    assert rate(1.00, "regression") <= 0.05
    assert rate(1.10, "regression") >= 0.95
    assert rate(1.20, "regression") == 1.0


def test_too_much_noise_is_inconclusive_and_uses_every_pair():
    """Pairs spread by 50% (a machine far busier than a hog on one core): the gate says it cannot judge."""
    rng = np.random.default_rng(3)
    verdicts = [pg.replay(_sim(1.0, 0.5, 24, rng), rule=RULE) for _ in range(100)]
    counts = {v: sum(x == v for x, _, _ in verdicts) for v in ("inconclusive", "ok", "regression")}
    assert counts["inconclusive"] >= 60 and counts["regression"] <= 8, counts
    assert all(n == 24 for v, n, _ in verdicts if v == "inconclusive")  # the sequential schedule went to the end
    assert pg.looks(8, 24, 8) == [8, 16, 24] and pg.looks(8, 10, 4) == [8, 10] and pg.looks(8, 8, 4) == [8]


# ---------------------------------------------------------------- measuring with an executor
def _case(cid: str, art: str, sha: str) -> Case:
    return Case(id=cid, artifact=art, runtime="onnxruntime", target="onnx", precision="fp32", threads=1,
                artifact_sha256=sha)


class FakeMachine:
    """Runs a 'process': samples of a latency per artifact, the machine's speed drifting between calls."""

    def __init__(self, ms: dict[str, float], drift: float = 0.2, fail: str = "") -> None:
        self.ms, self.drift, self.fail, self.calls, self.rng = ms, drift, fail, [], np.random.default_rng(0)

    def __call__(self, case: Case, protocol, *, timeout_s: float = 900.0) -> CaseResult:
        self.calls.append(case.artifact)
        if case.artifact == self.fail:
            return CaseResult(case, False, "worker crashed: boom")
        speed = 1 + self.drift * math.sin(len(self.calls) / 3)  # slow drift: a pair sees nearly the same speed
        xs = self.ms[case.artifact] * speed * (1 + 0.01 * self.rng.standard_normal(30))
        return CaseResult(case, True, samples_ms=list(map(float, xs)), stability={"stable": True})


def test_measure_pairs_alternates_and_cancels_drift():
    from edgevit.bench.protocol import Protocol

    m = FakeMachine({"b": 10.0, "h": 11.5, "same": 10.0})
    pairs = [(_case("slow", "b", "1"), _case("slow", "h", "2")), (_case("same", "b", "1"), _case("same", "same", "3"))]
    out = {c.id: c for c in pg.measure_pairs(pairs, Protocol(runs=1), rule=RULE, executor=m)}
    assert out["slow"].verdict == "regression" and out["slow"].ratio == pytest.approx(1.15, rel=0.02)
    assert out["same"].verdict == "ok" and out["slow"].pairs == out["same"].pairs == 8
    # round-robin over cases, base first on even pairs and head first on odd ones
    assert m.calls[:8] == ["b", "h", "b", "same", "h", "b", "same", "b"]
    assert len(m.calls) == 2 * 2 * 8


def test_measure_pairs_sequential_identical_and_errors():
    from edgevit.bench.protocol import Protocol

    # +5% sits on the tolerance: the case stays open and gets more pairs (up to max_pairs)
    m = FakeMachine({"b": 10.0, "edge": 10.5, "x": 1.0}, drift=0.0)
    pairs = [(_case("edge", "b", "1"), _case("edge", "edge", "2")), (_case("twin", "x", "9"), _case("twin", "x", "9")),
             (_case("bad", "b", "1"), _case("bad", "broken", "4"))]
    m.fail = "broken"
    out = {c.id: c for c in pg.measure_pairs(pairs, Protocol(runs=1), rule=RULE, min_pairs=8, max_pairs=16,
                                              executor=m)}
    assert out["twin"].verdict == "ok" and "identical artifact" in out["twin"].note and out["twin"].pairs == 0
    assert "x" not in m.calls  # identical bytes are never timed
    assert out["bad"].verdict == "error" and "boom" in out["bad"].note
    assert out["edge"].pairs > 8 or out["edge"].verdict != "inconclusive"
    with pytest.raises(ConfigError, match="pairs"):
        pg.measure_pairs(pairs, Protocol(runs=1), rule=RULE, min_pairs=9, max_pairs=8, executor=m)


def test_match_missing_new_and_no_overlap():
    base = pg.Side("base", {"a": _case("a", "ba", "1"), "gone": _case("gone", "bg", "2")})
    head = pg.Side("head", {"a": _case("a", "ha", "3"), "added": _case("added", "hn", "4")})
    pairs, missing, new = pg.match(base, head)
    assert [(b.artifact, h.artifact) for b, h in pairs] == [("ba", "ha")] and missing == ["gone"] and new == ["added"]
    with pytest.raises(ConfigError, match="no case in common between the base"):
        pg.match(pg.Side("base", {"x": _case("x", "bx", "1")}), head)


# ---------------------------------------------------------------- the CLI, end to end
SUITE = """\
name: tiny
profile: host
threads: 1
protocol: {{warmup: 2, warmup_seconds: 0.05, runs: 15}}
cases:
  - artifacts: [{artifacts}]
"""


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEVIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def _suite(root: Path, *names: str) -> Path:
    path = root / "suite.yaml"
    path.write_text(SUITE.format(artifacts=", ".join(f"head/{n}.onnx" for n in names)))
    return path


def test_cli_paired_folder_catches_a_real_slowdown(runner, tmp_path):
    conv_stack(tmp_path / "base" / "net.onnx", 8)
    conv_stack(tmp_path / "head" / "net.onnx", 48)  # 6x the work: noise cannot hide it
    conv_stack(tmp_path / "base" / "same.onnx", 8)
    conv_stack(tmp_path / "head" / "same.onnx", 8, seed=1)  # same work, other bytes: timed, must pass
    suite = _suite(tmp_path, "net", "same")
    md, js = tmp_path / "gate.md", tmp_path / "gate.json"
    res = runner.invoke(app, ["regress", "--base", str(tmp_path / "base"), "--suite", str(suite), "--tolerance", "1.0",
                              "--floor-ms", "0.1", "--pairs", "6", "--max-pairs", "6", "--markdown", str(md),
                              "--json", str(js)])
    assert res.exit_code == 1, res.output
    assert "latency gate failed: regression: net/onnxruntime/fp32/b1/t1" in res.output
    verdicts = {c["id"].split("/")[0]: c for c in json.loads(js.read_text())["cases"]}
    assert verdicts["net"]["verdict"] == "regression" and verdicts["net"]["ratio"] > 2
    assert verdicts["same"]["verdict"] == "ok" and verdicts["same"]["pairs"] == 6, verdicts["same"]
    text = md.read_text()
    assert "❌ latency regression" in text and "base folder" in text and "| net/onnxruntime/fp32/b1/t1 |" in text


def test_cli_paired_missing_new_and_errors(runner, tmp_path):
    conv_stack(tmp_path / "base" / "net.onnx", 4)
    conv_stack(tmp_path / "base" / "gone.onnx", 4)
    conv_stack(tmp_path / "head" / "net.onnx", 4)  # identical bytes: not timed
    conv_stack(tmp_path / "head" / "added.onnx", 4)
    suite = _suite(tmp_path, "net", "added")
    args = ["regress", "--base", str(tmp_path / "base"), "--suite", str(suite)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "missing: gone/onnxruntime/fp32/b1/t1" in res.output and "--allow-missing" in res.output
    res = runner.invoke(app, [*args, "--allow-missing", "--json", str(tmp_path / "g.json")])
    assert res.exit_code == 0, res.output
    verdicts = {c["id"].split("/")[0]: c["verdict"] for c in json.loads((tmp_path / "g.json").read_text())["cases"]}
    assert verdicts == {"net": "ok", "gone": "missing", "added": "new"}
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad, words in ((["--base", str(empty), "--suite", str(suite)], "no artifacts in it"),
                       (["--base", str(tmp_path / "base")], "paired mode is `edgevit regress --base REF|DIR --suite SUITE`: --suite missing"),
                       (["--base", "no-such-ref-xyz", "--suite", str(suite)], "--base no-such-ref-xyz")):
        res = runner.invoke(app, ["regress", *bad])
        assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output, res.output


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cli_paired_git_ref_runs_the_refs_own_edgevit(runner, tmp_path, monkeypatch):
    """At REF the repository holds an edgevit whose `bench --suite --json` reports a 6x heavier artifact
    for the suite's case: the gate must time that one (the base's own output), so head reads as a win."""
    repo = tmp_path / "repo"
    heavy = conv_stack(tmp_path / "base-made" / "net.onnx", 48)
    conv_stack(repo / "head" / "net.onnx", 8)
    suite = _suite(repo, "net")
    (repo / "edgevit" / "cli").mkdir(parents=True)
    (repo / "edgevit" / "__init__.py").write_text("")
    (repo / "edgevit" / "cli" / "__init__.py").write_text(textwrap.dedent(f"""\
        import json, sys
        def main():
            args = sys.argv[1:]
            out = args[args.index("--json") + 1]
            case = {{"id": "net/onnxruntime/fp32/b1/t1", "artifact": {str(heavy)!r}, "runtime": "onnxruntime",
                    "target": "onnx", "precision": "fp32", "threads": 1, "artifact_sha256": "base-made"}}
            json.dump({{"schema": "edgevit.bench/1", "setup": {{"profile": "host"}}, "host": {{}}, "versions": {{}},
                       "cases": [{{"case": case, "ok": True, "samples_ms": [1.0]}}]}}, open(out, "w"))
        """))
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    shutil.rmtree(repo / "edgevit")  # head's edgevit is this one; the ref's exists only in git
    monkeypatch.chdir(repo)
    js = tmp_path / "gate.json"
    res = runner.invoke(app, ["regress", "--base", "HEAD", "--suite", str(suite), "--tolerance", "1.0", "--pairs", "6",
                              "--max-pairs", "6", "--json", str(js)])
    assert res.exit_code == 0, res.output
    (case,) = json.loads(js.read_text())["cases"]
    assert case["verdict"] == "improvement" and case["ratio"] < 0.5, case
    assert "exported by its own edgevit" in res.output
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True,
                               check=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cli_paired_git_ref_of_this_repository(runner, tmp_path, monkeypatch):
    """The real thing: HEAD of this checkout exported by its own (committed) edgevit in a worktree."""
    root = Path(__file__).resolve().parents[1]
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, check=False).returncode:
        pytest.skip("not a git checkout")
    conv_stack(tmp_path / "head" / "net.onnx", 8)
    suite = _suite(tmp_path, "net")
    monkeypatch.chdir(root)
    js = tmp_path / "gate.json"
    res = runner.invoke(app, ["regress", "--base", "HEAD", "--suite", str(suite), "--json", str(js)])
    assert res.exit_code == 0 and "exported by its own edgevit" in res.output, res.output
    (case,) = json.loads(js.read_text())["cases"]
    assert case["verdict"] == "ok" and "identical artifact" in case["note"]  # the base measured the same file


def test_ci_workflow_runs_the_paired_gate():
    """.github/workflows/latency.yml gates with the paired mode on the smoke suite, with the history it needs."""
    import yaml

    from edgevit.bench.suites import load_suite

    root = Path(__file__).resolve().parents[1]
    flow = yaml.safe_load((root / ".github" / "workflows" / "latency.yml").read_text())
    steps = flow["jobs"]["gate"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base commit is needed for `git worktree add`
    gate = next(s for s in steps if "regress --base" in s.get("run", ""))
    assert "--suite benchmarks/suites/smoke.yaml" in gate["run"] and "if" not in gate  # every event, never skipped
    assert "continue-on-error" not in gate
    load_suite(root / "benchmarks" / "suites" / "smoke.yaml")  # the suite it names is valid
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    for pattern in ("edgevit/models/**", "edgevit/backends/**"):
        assert pattern in cache["with"]["key"] and (root / pattern.split("/**")[0]).is_dir()
