"""The gate against a stored baseline fails loudly where it used to pass silently: no case in common, a
baseline case missing from the run, other profiles, malformed files (one line, exit 2, never exit 3), and a
regression measured on a busy machine is inconclusive unless the machine cannot explain it."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgevit.bench.api import BenchResults
from edgevit.bench.regress import compare
from edgevit.bench.runner import Case, CaseResult
from edgevit.bench.tables import regress_markdown, write_json
from edgevit.cli import app
from edgevit.errors import ConfigError

RNG = np.random.default_rng(0)
STABLE = {"stable": True, "reasons": [], "own_cores": 1.0, "others_cores": 0.0}
BUSY = {"stable": False, "reasons": ["busy machine: other processes used 1.40 of 2 cores"], "flags": ["busy"],
        "own_cores": 0.6, "others_cores": 1.4}


def _res(cases: dict[str, float], profile: str = "host", stability: dict | None = None) -> BenchResults:
    out = []
    for cid, ms in cases.items():
        case = Case(id=cid, artifact="a.onnx", runtime="onnxruntime", target="onnx", precision="fp32", threads=1,
                    reference=cid.startswith("@"))
        xs = list(map(float, ms * (1 + 0.01 * RNG.standard_normal(40))))
        out.append(CaseResult(case, True, stats={"median": float(np.median(xs))}, samples_ms=xs,
                              stability=dict(stability or STABLE)))
    return BenchResults({"profile": profile, "host_fingerprint": "A|x86_64|2"}, {"cpu": "A", "cores": 2}, {}, out)


@pytest.fixture
def files(tmp_path):
    def write(name: str, res: BenchResults) -> str:
        return str(write_json(res, tmp_path / f"{name}.json"))
    return write


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str):
        res = runner.invoke(app, ["regress", *args])
        assert "Traceback" not in res.output and "internal error" not in res.output, res.output
        return res
    return run


def _error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith("error:")]


def test_no_case_in_common_fails(files, cli):
    base = files("base", _res({"@ref": 5, "a/onnxruntime/fp32/b1/t1": 10}))
    cur = files("cur", _res({"@ref": 5, "b/onnxruntime/fp32/b1/t1": 10}))
    res = cli(cur, "--baseline", base)
    assert res.exit_code == 2 and len(_error_lines(res.output)) == 1
    assert "no case in common between the results (b/onnxruntime/fp32/b1/t1) and the baseline (a/" in res.output
    with pytest.raises(ConfigError, match="no case in common"):
        compare(_res({"x": 1}), _res({"y": 1}), tolerance=0.1, floor_ms=0)


def test_missing_baseline_case_fails_unless_allowed(files, cli, tmp_path):
    base = files("base", _res({"a": 10, "b": 10}))
    cur = files("cur", _res({"a": 10}))
    res = cli(cur, "--baseline", base, "--tolerance", "0.5")
    assert res.exit_code == 1 and _error_lines(res.output) == [
        "error: latency gate failed: missing: b (in the base, not in this run (--allow-missing accepts that))"]
    res = cli(cur, "--baseline", base, "--tolerance", "0.5", "--allow-missing", "--markdown", str(tmp_path / "g.md"))
    assert res.exit_code == 0, res.output
    assert "✅ no regression" in (tmp_path / "g.md").read_text()


def test_profiles_differ(files, cli):
    base = files("base", _res({"a": 10}, profile="host"))
    cur = files("cur", _res({"a": 10}, profile="arm-a17"))
    res = cli(cur, "--baseline", base)
    assert res.exit_code == 2 and "current results are for profile 'arm-a17', the baseline for 'host'" in res.output


def _raw(res: BenchResults) -> dict:
    return json.loads(json.dumps(res.to_dict()))


GOOD = _res({"a": 10})


def _bad(mutate) -> object:
    data = _raw(GOOD)
    out = mutate(data)
    return data if out is None else out


BAD_FILES = {
    "a JSON list": (lambda d: [d], "a bench result is a JSON object, got a list"),
    "another schema": (lambda d: d.update(schema="edgevit.predict/1"),
                       "not an edgevit bench result (schema 'edgevit.predict/1'"),
    "string samples": (lambda d: d["cases"][0].update(samples_ms=["1.2", "1.3"]), "samples_ms must be positive numbers"),
    "empty samples": (lambda d: d["cases"][0].update(samples_ms=[]), "a measured case has no samples"),
    "samples not a list": (lambda d: d["cases"][0].update(samples_ms="1.2"), "samples_ms must be a list of numbers"),
    "negative sample": (lambda d: d["cases"][0].update(samples_ms=[1.0, -2.0]), "found -2.0"),
    "no case id": (lambda d: d["cases"][0]["case"].pop("id") and None, "case.id must be str"),
    "cases not a list": (lambda d: d.update(cases={}), "field 'cases' must be a list"),
    "no setup": (lambda d: d.pop("setup") and None, "field 'setup' must be an object"),
    "no profile": (lambda d: d["setup"].pop("profile") and None, "setup.profile must be a profile name"),
    "case not an object": (lambda d: d["cases"].__setitem__(0, 3), "must be an object with a 'case' object"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_malformed_results_are_one_line_user_errors(name, tmp_path, files, cli):
    mutate, words = BAD_FILES[name]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_bad(mutate)))
    good = files("good", GOOD)
    for args in ((str(bad), "--baseline", good), (good, "--baseline", str(bad))):
        res = cli(*args)
        lines = _error_lines(res.output)
        assert res.exit_code == 2 and len(lines) == 1 and words in lines[0] and str(bad) in lines[0], res.output


def test_not_json_and_unreadable(tmp_path, files, cli):
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    res = cli(str(bad), "--baseline", files("good", GOOD))
    assert res.exit_code == 2 and "not JSON" in res.output
    res = cli(str(tmp_path / "none.json"), "--baseline", files("good", GOOD))
    assert res.exit_code == 2 and "cannot read" in res.output


def test_busy_machine_regression_is_inconclusive():
    base = _res({"m": 10})
    # 1.5x slower, but the current case got 0.6 of its core: sharing alone explains up to 1.67x
    slowish = _res({"m": 15}, stability=BUSY)
    (c,) = compare(slowish, base, tolerance=0.1, floor_ms=0.5, normalize="never").cases
    assert c.verdict == "inconclusive" and "unstable machine" in c.note and "--base REF" in c.note
    rep = compare(slowish, base, tolerance=0.1, floor_ms=0.5, normalize="never")
    assert rep.failed and "❔ inconclusive" in regress_markdown(rep)
    assert not compare(slowish, base, tolerance=0.1, floor_ms=0.5, normalize="never", allow_inconclusive=True).failed
    # 3x slower cannot come from a 0.6-core share: still a regression
    (c,) = compare(_res({"m": 30}, stability=BUSY), base, tolerance=0.1, floor_ms=0.5, normalize="never").cases
    assert c.verdict == "regression" and "beyond what the busy machine can explain" in c.note
    # the same 1.5x on a stable machine is a regression
    (c,) = compare(_res({"m": 15}), base, tolerance=0.1, floor_ms=0.5, normalize="never").cases
    assert c.verdict == "regression"


def test_baseline_tolerance_from_the_profile(tmp_path):
    """`gate.baseline_tolerance` (host: wide, stored baselines drift) is what the baseline mode uses."""
    from edgevit.bench.profiles import load_profile

    gate = load_profile("host").gate
    base = _res({"m": 10})
    rep = compare(copy.deepcopy(base), base)
    assert rep.tolerance == (gate.baseline_tolerance or gate.rel_tolerance)


def test_update_replaces_a_baseline_it_cannot_compare_with(tmp_path, files, cli):
    old = files("old", _res({"a/onnxruntime/fp32/b1/t1": 10}))
    new = files("new", _res({"b/onnxruntime/fp32/b1/t1": 10}))
    assert cli(new, "--baseline", old).exit_code == 2  # no case in common: the gate refuses to judge
    res = cli(new, "--baseline", old, "--update")  # but a new baseline may replace it
    assert res.exit_code == 0 and "not compared with the old baseline" in res.output, res.output
    assert json.loads(Path(old).read_text())["cases"][0]["case"]["id"] == "b/onnxruntime/fp32/b1/t1"
    emulated = _res({"a": 10})
    emulated.setup["measured_on"] = "emulated"
    res = cli(files("emu", emulated), "--baseline", str(tmp_path / "e.json"), "--update", "--force")
    assert res.exit_code == 2 and "emulated" in res.output and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize(("args", "words"), [
    ([], "give --base REF|DIR --suite SUITE (paired), or RESULTS --baseline FILE (stored), or --predicted"),
    (["--base", "main"], "paired mode is `edgevit regress --base REF|DIR --suite SUITE`: --suite missing"),
    (["cur.json"], "stored mode is `edgevit regress RESULTS --baseline FILE`: --baseline missing"),
    (["cur.json", "--baseline", "b.json", "--pairs", "4"], "--pairs: not an option of stored mode"),
    (["--base", "main", "--suite", "smoke", "--update"], "--update: not an option of paired mode"),
    (["--base", "main", "--suite", "smoke", "--head", "h"], "--head: not an option of paired mode"),
    (["--predicted", "--base", "b"], ("predicted mode is `edgevit regress --predicted --base DIR --head DIR --device "
                                     "PROFILE`: --head and --device missing")),
    (["--predicted", "--base", "b", "--head", "h", "-d", "arm-a17", "--suite", "s"],
     "--suite: not an option of predicted mode"),
    (["cur.json", "--baseline", "b.json", "--force"], "--force only applies to --update"),
])
def test_one_command_three_modes_and_one_line_errors(cli, args, words):
    """The options choose the mode; a missing or misplaced option is one line naming the mode's usage, exit 2."""
    res = cli(*args)
    lines = _error_lines(res.output)
    assert res.exit_code == 2 and len(lines) == 1 and words in lines[0], res.output


def test_cli_inconclusive_says_what_to_do(files, cli):
    """Exit 1 with the case's reason under the table and what to do in the error line; allowed: exit 0."""
    base = files("base", _res({"m/onnxruntime/fp32/b1/t1": 10}))
    cur = files("cur", _res({"m/onnxruntime/fp32/b1/t1": 15}, stability=BUSY))
    args = (cur, "--baseline", base, "--tolerance", "0.1", "--floor-ms", "0.5", "--normalize", "never")
    res = cli(*args)
    (line,) = _error_lines(res.output)
    assert res.exit_code == 1 and line.startswith("error: latency gate failed: inconclusive: m/onnxruntime/fp32/b1/t1")
    assert "rerun on a quieter machine, compare paired with --base REF --suite SUITE" in line
    assert "m/onnxruntime/fp32/b1/t1: inconclusive: " in res.output and "unstable machine" in res.output
    assert cli(*args, "--allow-inconclusive").exit_code == 0
