"""The predicted-latency gate catches a structural regression deterministically, with no device."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pnnx", reason="exports the toy network to ncnn (pip install 'edgevit[ncnn]')")
pytest.importorskip("ncnn", reason="blob shapes come from ncnn (pip install 'edgevit[ncnn]')")

from edgevit.predict.gate import compare_predicted
from tests._predict_toy import export_toy


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    export_toy(root / "base", tokens=True)
    export_toy(root / "worse", tokens=False)
    export_toy(root / "same", tokens=True)
    return root


def test_gate_fails_on_reshape_gemm_reshape(folders) -> None:
    worse = (folders / "worse" / "toy.ncnn" / "model.param").read_text()
    base = (folders / "base" / "toy.ncnn" / "model.param").read_text()
    assert worse.count("Reshape") > base.count("Reshape")  # pnnx wrapped the 4-D linears
    for device in ("arm-a17", "arm-a72"):
        rep = compare_predicted(folders / "base", folders / "worse", device=device)
        (case,) = rep.cases
        assert case.verdict == "regression" and rep.failed and rep.exit_code == 1, case
        assert case.ratio > 1.05
        assert max(case.changed_terms, key=lambda t: case.changed_terms[t]) == "traffic"  # the added layout copies


def test_gate_passes_identical_exports_with_ratio_exactly_one(folders) -> None:
    rep = compare_predicted(folders / "base", folders / "same", device="arm-a17")
    (case,) = rep.cases
    assert case.verdict == "ok" and case.ratio == 1.0 and not rep.failed
    again = compare_predicted(folders / "base", folders / "same", device="arm-a17")
    assert again.to_dict() == rep.to_dict()  # deterministic: no timing, no noise


def test_gate_reports_missing_and_new_models(folders, tmp_path) -> None:
    head = tmp_path / "head"
    shutil.copytree(folders / "same", head)
    for p in head.iterdir():
        p.rename(head / p.name.replace("toy", "other"))
    (head / "other.ncnn.json").write_text('{"model": "other"}')
    rep = compare_predicted(folders / "base", head, device="arm-a17")
    assert sorted((c.model, c.verdict) for c in rep.cases) == [("other", "new"), ("toy", "missing")]
    assert not rep.failed


def test_gate_cli_exit_codes(folders) -> None:
    from typer.testing import CliRunner

    from edgevit.cli import app

    bad = CliRunner().invoke(app, ["regress", "--predicted", "--base", str(folders / "base"), "--head",
                                   str(folders / "worse"), "--device", "arm-a17"])
    assert bad.exit_code == 1 and "regression" in bad.output, bad.output
    ok = CliRunner().invoke(app, ["regress", "--predicted", "--base", str(folders / "base"), "--head",
                                  str(folders / "same"), "--device", "arm-a17"])
    assert ok.exit_code == 0, ok.output


def test_gate_cli_missing_model_and_no_overlap(folders, tmp_path) -> None:
    """As the paired and stored modes: a base model missing from head fails unless --allow-missing; no
    model in common is a one-line error (exit 2); --markdown writes the CI summary."""
    from typer.testing import CliRunner

    from edgevit.cli import app

    head = tmp_path / "head"
    head.mkdir()
    other = tmp_path / "other"
    shutil.copytree(folders / "same", other)
    for p in other.iterdir():
        p.rename(other / p.name.replace("toy", "other"))
    (other / "other.ncnn.json").write_text('{"model": "other"}')
    both = tmp_path / "both"
    shutil.copytree(folders / "same", both)
    for p in other.iterdir():
        (shutil.copytree if p.is_dir() else shutil.copy)(p, both / p.name)
    run = CliRunner().invoke
    args = ["regress", "--predicted", "--device", "arm-a17"]
    res = run(app, [*args, "--base", str(both), "--head", str(folders / "same"), "--markdown", str(tmp_path / "g.md")])
    assert res.exit_code == 1 and "missing: other" in res.output and "--allow-missing" in res.output, res.output
    assert "| toy |" in (tmp_path / "g.md").read_text()
    res = run(app, [*args, "--base", str(both), "--head", str(folders / "same"), "--allow-missing"])
    assert res.exit_code == 0, res.output
    res = run(app, [*args, "--base", str(folders / "base"), "--head", str(other)])
    assert res.exit_code == 2 and "no model in common" in res.output, res.output
