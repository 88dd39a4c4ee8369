"""Cost features against hand-computed work of tiny graphs; the .param and benchncnn README parsers."""
from __future__ import annotations

import pytest

from edgevit.errors import ConfigError
from edgevit.predict.benchncnn import parse_benchncnn_readme, split_name
from edgevit.predict.ncnn_graph import parse_ncnn_param

CNN_PARAM = """7767517
7 7
Input                data     0 1 data 0=8 1=8 2=3
Convolution          conv1    1 1 data c1 0=16 1=3 11=3 3=1 13=1 4=1 14=1 5=1 6=432 9=1
ConvolutionDepthWise dw       1 1 c1 d1 0=16 1=3 11=3 3=2 13=2 4=1 14=1 5=1 6=144 7=16
Convolution          pw       1 1 d1 p1 0=32 1=1 11=1 5=1 6=512
Pooling              gap      1 1 p1 g1 0=1 4=1
InnerProduct         fc       1 1 g1 f1 0=10 1=1 2=320
Softmax              prob     1 1 f1 out 0=0
"""

TOKENS_PARAM = """7767517
5 6
Input                in       0 1 in 0=8 1=4
Gemm                 lin      1 1 in g1 2=0 3=1 4=0 5=1 6=1 7=4 8=16 9=8 10=4
Split                sp       1 2 g1 a b
MatMul               qk       2 1 a b s 0=1
Softmax              att      1 1 s out 0=1 1=1
"""


def test_param_parser_keeps_params_arrays_and_strings() -> None:
    text = """7767517
2 2
Input   in  0 1 in 0=8 1=8 2=3
Slice   sl  1 1 in out -23300=3,-233,-233,-233 1=0 6="0w,-1" 9=1.5e-1
"""
    layers = parse_ncnn_param(text)
    assert [layer.type for layer in layers] == ["Input", "Slice"]
    sl = layers[1]
    assert sl.params[0] == (-233, -233, -233)  # array parameter 0 (key -23300)
    assert sl.params[6] == "0w,-1" and sl.int(6, 7) == 7  # pnnx's string expressions are not numbers
    assert sl.params[9] == pytest.approx(0.15)
    with pytest.raises(ConfigError, match="magic"):
        parse_ncnn_param("123\n1 1\n")
    with pytest.raises(ConfigError, match="line 3"):
        parse_ncnn_param("7767517\n1 1\nConvolution c 1 1 a\n")


def test_ncnn_features_match_hand_computed_work() -> None:
    pytest.importorskip("ncnn", reason="blob shapes come from ncnn itself (pip install 'edgevit[ncnn]')")
    from edgevit.predict.features import ncnn_features

    f = ncnn_features(CNN_PARAM, "tiny")
    m = 1e-6
    # conv1: 8x8 outputs x 432 weights; dw (stride 2): 4x4 x 144; pw: 4x4 x 512; fc: 320 weights
    assert f.work["conv3x3s1"] == pytest.approx(64 * 432 * m)
    assert f.work["dwconv3"] == pytest.approx(16 * 144 * m)
    assert f.work["conv1x1"] == pytest.approx(16 * 512 * m)
    assert f.work["fc"] == pytest.approx(320 * m)
    assert f.total_macs_m == pytest.approx((64 * 432 + 16 * 144 + 16 * 512 + 320) * m)
    assert f.work["eltwise"] == pytest.approx(16 * 64 * m)  # ReLU fused into conv1 (9=1)
    assert f.work["pool"] == pytest.approx(32 * 16 * m)  # global pooling reads 32x4x4
    assert f.work["softmax"] == pytest.approx(10 * m)
    assert f.work["conv_io"] == pytest.approx((3 * 64 + 16 * 64 + 16 * 16 + 32 * 16) * m)  # conv1 + pw in/out
    assert f.work["dw_io"] == pytest.approx((16 * 64 + 16 * 16) * m)
    assert f.work["weights"] == pytest.approx((432 + 144 + 512 + 320) * m)
    assert f.layers == 6 and f.input_shapes == {"data": [3, 8, 8]}
    assert not f.unknown_types


def test_ncnn_features_gemm_and_matmul() -> None:
    pytest.importorskip("ncnn", reason="blob shapes come from ncnn itself (pip install 'edgevit[ncnn]')")
    from edgevit.predict.features import ncnn_features

    f = ncnn_features(TOKENS_PARAM, "tokens")
    assert f.work["gemm"] == pytest.approx(4 * 16 * 8 * 1e-6)  # M=4 tokens, N=16, K=8
    assert f.work["matmul"] == pytest.approx(4 * 4 * 16 * 1e-6)  # (4x16) @ (4x16)^T
    assert f.work["softmax"] == pytest.approx(16 * 1e-6)
    assert f.layers == 3  # Gemm, MatMul, Softmax: Input and Split (a shared blob) do no work


def test_unknown_layer_type_is_reported_not_priced() -> None:
    from edgevit.predict.features import features_from_layers

    layers = parse_ncnn_param("7767517\n2 2\nInput in 0 1 in 0=4\nFancyOp f 1 1 in out 0=1\n")
    f = features_from_layers("x", layers, {"in": (4,), "out": (4,)})
    assert f.unknown_types == ["FancyOp"] and f.total_macs_m == 0


def test_onnx_features_match_hand_computed_work(tmp_path) -> None:
    pytest.importorskip("onnx")
    import torch
    from torch import nn

    from edgevit.predict.onnx_graph import onnx_features

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, 1, 1)
            self.dw = nn.Conv2d(8, 8, 3, 2, 1, groups=8)
            self.lin = nn.Linear(8, 12)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.dw(torch.relu(self.conv(x))).flatten(2).transpose(1, 2)  # (1, 16, 8) tokens
            t = self.lin(t)  # (1, 16, 12)
            return torch.softmax(t @ t.transpose(1, 2), dim=-1)  # (1, 16, 16)

    path = tmp_path / "tiny.onnx"
    torch.onnx.export(Tiny().eval(), (torch.zeros(1, 3, 8, 8),), str(path), opset_version=17, dynamo=False)
    f = onnx_features(path)
    m = 1e-6
    assert f.work["conv3x3s1"] == pytest.approx(64 * 8 * 3 * 9 * m)
    assert f.work["dwconv3"] == pytest.approx(16 * 8 * 9 * m)
    assert f.work["gemm"] == pytest.approx(16 * 8 * 12 * m)  # linear on 16 tokens
    assert f.work["matmul"] == pytest.approx(16 * 16 * 12 * m)  # t @ t^T between activations
    assert f.work["softmax"] == pytest.approx(256 * m)
    assert f.source == "onnx"


def test_onnx_gemm_whose_input_shape_was_lost_is_counted(tmp_path) -> None:
    """A Gemm after an op shape inference cannot follow (here: a graph input of unknown rank) is counted from
    its weight and output, never an IndexError."""
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from edgevit.predict.onnx_graph import onnx_features

    w = numpy_helper.from_array(np.ones((8, 10), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],  # no shape: what a lost inference leaves
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[w])
    path = tmp_path / "lost.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    f = onnx_features(path)
    assert f.work["fc"] == pytest.approx(8 * 10 * 1e-6)  # batch 1: one row of K=8 by N=10, a classifier head

README = """# benchmark
### Board One (Cortex-A17 1.8GHz x 4)
```
board:/ # ./benchncnn 8 4 0 -1 1
loop_count = 8
num_threads = 4
powersave = 0
gpu_device = -1
cooling_down = 1
          squeezenet  min =   56.61  max =   56.80  avg =   56.69
     squeezenet_int8  min =   40.63  max =   41.05  avg =   40.89

board:/ # ./benchncnn 4 1 0 0 0
[0 Mali-T760]  queueC=0[2]  queueG=0[2]  queueT=0[2]
loop_count = 4
num_threads = 1
powersave = 0
gpu_device = 0
cooling_down = 0
          squeezenet  min =   41.78  max =   41.82  avg =   41.79
```
### Old Board (Cortex-A17 1.2GHz x 1)
```
root@old:/ # taskset 2 ./benchncnn 8 1 0
loop_count = 8
num_threads = 1
powersave = 0
 squeezenet-int8  min =  200.87  max =  202.47  avg =  201.74
  squeezenet-ssd  min =  574.62  max =  580.12  avg =  577.23
```
"""


def test_benchncnn_readme_parser_keeps_cpu_runs_with_lines() -> None:
    runs = parse_benchncnn_readme(README)
    assert [(r.board, r.threads, r.gpu_device) for r in runs] == [
        ("Board One (Cortex-A17 1.8GHz x 4)", 4, -1), ("Old Board (Cortex-A17 1.2GHz x 1)", 1, None)]
    first = runs[0].rows
    assert [(x.network, x.precision, x.min_ms, x.avg_ms) for x in first] == [
        ("squeezenet", "fp32", 56.61, 56.69), ("squeezenet", "int8", 40.63, 40.89)]
    assert README.splitlines()[first[1].line - 1].strip().startswith("squeezenet_int8")
    old = runs[1].rows
    assert [(x.network, x.precision) for x in old] == [("squeezenet", "int8"), ("squeezenet_ssd", "fp32")]
    gpu = [r for r in parse_benchncnn_readme(README, cpu_only=False) if not r.cpu]
    assert len(gpu) == 1 and gpu[0].rows[0].min_ms == 41.78
    assert split_name("mobilenet_ssd_int8") == ("mobilenet_ssd", "int8")


def test_shipped_board_data_has_sources_and_features() -> None:
    from edgevit.predict.data import benchmark_data

    data = benchmark_data()
    assert data["source"]["repository"] == "https://github.com/Tencent/ncnn"
    for board in ("rk3288", "rpi4", "rpi5", "orin-nano"):
        b = data["boards"][board]
        assert b["runs"], board
        for run in b["runs"]:
            assert run["threads"] and run["published"]["commit"] and run["published"]["date"]
            assert all(r["line"] > 0 and r["min_ms"] > 0 for r in run["rows"])
    rk = {r["threads"]: r for r in data["boards"]["rk3288"]["runs"]}
    resnet18 = next(r for r in rk[4]["rows"] if r["network"] == "resnet18" and r["precision"] == "fp32")
    assert resnet18["min_ms"] == 172.39  # ncnn benchmark/README.md, RK3288-CG.W, 4 threads
    assert data["networks"]["resnet18"]["work"]["conv3x3s1"] > 1000  # 1.5 GMACs of 3x3 stride-1 convs
