"""Bench of a tiny ONNX model in fresh processes: sane numbers, every output format parses back."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from edgevit.bench import benchmark, load_results
from edgevit.bench.tables import parse_markdown_table, to_markdown, write_csv, write_json, write_markdown
from edgevit.errors import ConfigError

FAST = {"runs": 15, "warmup": 2, "warmup_seconds": 0.0}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 2, 1)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    torch.onnx.export(Tiny().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False,
                      input_names=["input"], output_names=["logits"])
    return path


@pytest.fixture(scope="module")
def result(tiny_onnx, tmp_path_factory):
    return benchmark([tiny_onnx], profile="host", threads=1, reference=True,
                     cache_root=tmp_path_factory.mktemp("cache"), **FAST)


def test_sane_numbers(result, tiny_onnx):
    assert result.ok and len(result.cases) == 2
    ref, case = result.cases
    assert ref.case.reference and case.case.id == "tiny/onnxruntime/fp32/b1/t1"
    s = case.stats
    assert s["n"] == len(case.samples_ms) >= 15
    assert 0 < s["min"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"]
    assert s["std"] >= 0 and case.load_ms > 0 and case.first_ms > 0
    size_mb = tiny_onnx.stat().st_size / 2**20
    assert case.case.model_size_bytes == tiny_onnx.stat().st_size
    # peak RSS is the worker's own (not the torch-sized parent's): above the model, below a few hundred MB
    assert size_mb < case.peak_rss_mb < 400 and case.peak_rss_mb >= case.rss_loaded_mb >= case.rss_start_mb
    assert case.input_shape == [1, 3, 32, 32] and case.output_shape == [1, 10]
    assert result.setup["on_device"] and result.host["cores"] >= 1 and result.versions["onnxruntime"]


def test_formats_parse_back(result, tmp_path):
    back = load_results(write_json(result, tmp_path / "r.json"))
    assert back.to_dict() == json.loads(json.dumps(result.to_dict()))
    assert back.cases[1].samples_ms == result.cases[1].samples_ms  # raw samples kept
    rows = list(csv.DictReader(write_csv(result, tmp_path / "r.csv").open()))
    assert [r["id"] for r in rows] == [c.case.id for c in result.cases]
    assert float(rows[1]["median_ms"]) == pytest.approx(result.cases[1].stats["median"])
    assert rows[1]["edgevit_version"] and rows[1]["host_cpu"]
    table = parse_markdown_table(write_markdown(result, tmp_path / "r.md").read_text())
    assert float(table[1]["median ms"]) == pytest.approx(result.cases[1].stats["median"], abs=0.006)
    named = write_json(result, f"{tmp_path}/dir/")
    assert named.name == "bench_host_onnxruntime_fp32_t1_b1.json"


def test_plot(result, tmp_path):
    pytest.importorskip("matplotlib")
    from edgevit.bench.plots import plot

    png = plot(result, tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_foreign_profile_is_labelled_and_strict_refuses(tiny_onnx, tmp_path):
    res = benchmark([tiny_onnx], profile="arm-a17", threads=1, cache_root=tmp_path, **FAST)
    assert not res.setup["on_device"] and res.setup["profile"] == "arm-a17"
    assert any("not the arm-a17 device" in w for w in res.setup["warnings"])
    assert "not a arm-a17" in to_markdown(res)
    with pytest.raises(ConfigError, match="--strict refuses"):
        benchmark([tiny_onnx], profile="arm-a17", strict=True, cache_root=tmp_path, **FAST)


def test_broken_artifact_is_an_error_not_a_crash(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    res = benchmark([bad], threads=1, cache_root=tmp_path, **FAST)
    assert not res.ok and "cannot load" in res.cases[0].error


def test_nothing_to_do():
    with pytest.raises(ConfigError, match="nothing to benchmark"):
        benchmark([])
