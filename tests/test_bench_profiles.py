"""Device profiles: every shipped profile loads; bad fields give one-line ConfigErrors naming the field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edgevit.bench.profiles import (
    HostInfo, detect_host, host_mismatches, list_profiles, load_profile, load_profile_file, validate_profile,
)
from edgevit.errors import ConfigError

SHIPPED = {"arm-a17", "arm-a72", "arm-a76", "jetson-orin-nano", "rtx3090", "host"}
HOST = HostInfo("box", "Linux", "x86_64", "AMD EPYC", 2, 2, 2.25, 23.5, "3.11")


def test_shipped_profiles_load_and_cover_the_issue():
    names = {p.name for p in list_profiles()}
    assert SHIPPED <= names
    a17 = load_profile("arm-a17")
    assert (a17.arch, a17.cores, a17.threads, a17.frequency_ghz, a17.runtime) == ("armv7l", 4, 4, 1.8, "ncnn")
    assert "onnxruntime" in a17.fallback_runtimes and "armv7" in a17.notes
    published = {r.model: r.latency_ms for r in a17.references}
    assert [published[f"fcaformer_l{i}"] for i in range(1, 5)] == [312, 728, 1344, 2624]
    assert published["convnext_tiny"] == 875 and published["swin_tiny"] == 588
    assert load_profile("rtx3090").batch == (1, 64)


def test_host_profile_is_detected():
    host = load_profile("host")
    real = detect_host()
    assert host.detected and host.cpu == real.cpu and host.cores == real.cores
    assert 1 <= host.threads <= max(4, real.cores)
    assert host_mismatches(host, real) == []


def test_foreign_profile_reports_mismatch():
    assert any("armv7l" in m for m in host_mismatches(load_profile("arm-a17"), HOST))


def _good() -> dict:
    return yaml.safe_load(Path(load_profile("arm-a72").path).read_text())


@pytest.mark.parametrize("change, message", [
    ({"cores": "four"}, "field 'cores' must be int"),
    ({"cores": 0}, "field 'cores' must be > 0"),
    ({"threads": True}, "field 'threads' must be int"),
    ({"precisions": ["fp8"]}, "precision 'fp8'"),
    ({"runtime": "tflite"}, "runtime 'tflite'"),
    ({"arch": "mips"}, "arch 'mips'"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"gate": {"rel_tolerance": -1}}, "gate.rel_tolerance"),
    ({"gate": {"statistic": "p42"}}, "gate.statistic"),
    ({"references": [{"model": "x"}]}, "missing required field 'latency_ms'"),
    ({"references": [{"model": "x", "latency_ms": -3}]}, "'latency_ms' must be > 0"),
    ({"cores": "auto"}, None),  # auto is allowed (filled from the host)
])
def test_bad_fields_give_one_line_errors(change, message):
    data = _good() | change
    if message is None:
        assert validate_profile(data, "arm-a72.yaml", host=HOST).cores == 2
        return
    with pytest.raises(ConfigError) as err:
        validate_profile(data, "arm-a72.yaml", host=HOST)
    text = str(err.value)
    assert message in text and "\n" not in text and "arm-a72.yaml" in text


def test_missing_field_and_bad_yaml_and_name_mismatch(tmp_path):
    data = _good()
    del data["runtime"]
    with pytest.raises(ConfigError, match="missing required field 'runtime'"):
        validate_profile(data, "x", host=HOST)
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_profile_file(bad)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(_good()))
    with pytest.raises(ConfigError, match="must match the file name"):
        load_profile_file(other)


def test_unknown_profile_suggests():
    with pytest.raises(ConfigError, match="did you mean 'arm-a17'"):
        load_profile("arm-a17x")


def test_profile_runtimes_are_the_registered_ones():
    """The runtime list was kept by hand and had `torchscript` (no such runner) instead of
    `torchscript-lite` (the real key); now it is the registry's."""
    from edgevit.backends import runtimes

    base = {"name": "board", "arch": "aarch64", "cpu": "Cortex-A76", "cores": 4, "threads": 4,
            "precisions": ["fp32"]}
    for key in runtimes():
        assert validate_profile({**base, "runtime": key}, "board").runtime == key
    assert validate_profile({**base, "runtime": "torchscript-lite"}, "board").runtime == "torchscript-lite"
    with pytest.raises(ConfigError, match="runtime 'torchscript' is not one of .*torchscript-lite"):
        validate_profile({**base, "runtime": "torchscript"}, "board")
    with pytest.raises(ConfigError, match="fallback runtime 'tflite'"):
        validate_profile({**base, "runtime": "onnxruntime", "fallback_runtimes": ["tflite"]}, "board")
