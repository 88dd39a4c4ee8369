"""ncnn runner: loads a `NAME.ncnn/` artifact (or a bare `.param` with its `.bin` beside it).

Options (besides `threads`, which sets `opt.num_threads`):
- `powersave`: ncnn's CPU set for its thread pool, `ncnn.set_cpu_powersave`: 0 = all cores,
  1 = little cores only, 2 = big cores only. Process-wide in ncnn; only meaningful on big.LITTLE
  ARM boards. Left untouched when not given; `EDGEVIT_NCNN_POWERSAVE=2` sets it for `edgevit bench`
  and `edgevit verify`, which pass only `--threads`.
- `fp16`: force fp16 storage/arithmetic on (True) or off (False). By default it follows the
  artifact's precision: off for fp32 artifacts (so they compare to PyTorch at fp32 tolerances on
  ARM, where ncnn would otherwise store activations in fp16) and for int8 artifacts (their float
  layers run fp32, as verified), ncnn's defaults for fp16 artifacts.
- `light_mode`: ncnn's `opt.lightmode` (recycle intermediate blobs), default True.
- `packing`: ncnn's `opt.use_packing_layout` (SIMD-packed channels), default ncnn's (on). Measured
  here: on x86 (AVX2) FcaFormer-L1 fp32 ran ~4x *faster* with packing off (1.3 s vs 5-6 s, one thread,
  loaded host); on ARM the packed layout is ncnn's NEON fast path, so the default stays on.

ncnn Mats have no batch axis: `infer` runs one extractor per row and stacks the results.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.errors import ConfigError
from edgevit.backends.base import Availability, Runner, probe_module
from edgevit.backends.ncnn.param import param_path, read_layers, read_manifest, terminal_outputs


class NcnnRunner(Runner):
    key = "ncnn"
    option_keys = ("powersave", "packing", "fp16", "light_mode")

    def __init__(self, *, threads: int | None = None, **options: object) -> None:
        super().__init__(threads=threads, **options)
        self.net: Any = None
        self.input_name = "in0"
        self.output_name = "out0"
        self.precision = "fp32"

    def load(self, path: Path) -> None:
        import ncnn

        param = param_path(Path(path))
        binf = param.with_suffix(".bin")
        if not param.is_file() or not binf.is_file():
            raise ConfigError(f"ncnn artifact needs {param.name} and {binf.name}: not found beside {param}")
        manifest = read_manifest(Path(path))
        layers = read_layers(param)
        self.precision = str(manifest.get("precision", "fp32"))  # bare .param: strict fp32 unless fp16=True
        inputs = manifest.get("inputs") or [layer.name for layer in layers if layer.kind == "Input"]
        self.input_name = inputs[0]
        if manifest.get("outputs"):
            self.output_name = manifest["outputs"][0]
        else:
            self.output_name = terminal_outputs(layers)[-1]

        powersave = self.options.get("powersave", os.environ.get("EDGEVIT_NCNN_POWERSAVE") or None)
        if powersave is not None and int(powersave) not in (0, 1, 2):  # type: ignore[arg-type]
            raise ConfigError(f"ncnn powersave must be 0 (all cores), 1 (little) or 2 (big), not {powersave!r}")
        if powersave is not None:
            ncnn.set_cpu_powersave(int(powersave))  # type: ignore[arg-type]
        net = ncnn.Net()
        opt = net.opt
        if self.threads:
            opt.num_threads = int(self.threads)
        opt.lightmode = bool(self.options.get("light_mode", True))
        if self.options.get("packing") is not None:
            opt.use_packing_layout = bool(self.options["packing"])
        fp16 = self.options.get("fp16")
        if fp16 is None:
            fp16 = self.precision == "fp16"
        if not fp16:
            opt.use_fp16_storage = False
            opt.use_fp16_packed = False
            opt.use_fp16_arithmetic = False
            opt.use_bf16_storage = False
            opt.use_bf16_packed = False
        else:
            opt.use_fp16_storage = True
            opt.use_fp16_packed = True
            opt.use_fp16_arithmetic = True
        # int8 layers (int8_scale_term / quantize_term in the .param, int8 weights in the .bin) run their
        # int8 kernels only with use_int8_inference; ncnn defaults it on, an int8 artifact must not depend on it
        opt.use_int8_inference = True
        if net.load_param(str(param)) != 0:
            raise ConfigError(f"ncnn could not load {param} (unknown layer type or bad file)")
        if net.load_model(str(binf)) != 0:
            raise ConfigError(f"ncnn could not load the weights {binf}")
        self.net = net

    def infer(self, x: np.ndarray) -> np.ndarray:
        import ncnn

        x = np.asarray(x, dtype=np.float32)
        rows = []
        for i in range(x.shape[0]):
            arr = np.ascontiguousarray(x[i])  # must outlive the Mat: ncnn.Mat(ndarray) does not copy
            ex = self.net.create_extractor()
            ex.input(self.input_name, ncnn.Mat(arr))
            ret, out = ex.extract(self.output_name)
            if ret != 0:
                raise RuntimeError(f"ncnn extract({self.output_name!r}) failed with {ret}")
            rows.append(np.array(out, dtype=np.float32, copy=True))
            del ex
        return np.stack(rows)

    def close(self) -> None:
        if self.net is not None:
            self.net.clear()
            self.net = None


def probe() -> Availability:
    return probe_module("ncnn", "ncnn")
