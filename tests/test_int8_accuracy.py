"""int8 accuracy on trained models: each family's `tiny()` learns scikit-learn's digits (64x64x3) for
~30 s on CPU, goes through the real pipeline (checkpoint file, calibration folder, fp32 and int8
exports, verification) on ONNX Runtime and ExecuTorch, and int8 top-1 on held-out digits must stay
within 1.0 point of fp32 in the same runtime."""
from __future__ import annotations

import importlib
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from edgevit.models import list_models, register_model
from edgevit.quantize.data import center_crop, normalize

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
SIZE = 64
TRAIN_SECONDS = 45.0  # per family, 2 threads; also capped at MAX_STEPS for determinism on fast machines
MAX_STEPS = 400
BATCH = 32
FAMILIES = ("fcaformer", "casvit", "stvit", "cabvit")
RESULTS: dict[str, dict[str, float]] = {}


def _register(family: str) -> str:
    """Register the family's tiny() under digits_<family> so the pipeline can build it by name."""
    name = f"digits_{family}"
    if name not in list_models("digits"):
        tiny = importlib.import_module(f"edgevit.models.{family}").tiny

        def factory(num_classes: int = 10, img_size: int = SIZE, **_: object) -> torch.nn.Module:
            return tiny(num_classes=num_classes, img_size=img_size)

        factory.__name__ = name
        register_model(family="digits", paper="test", official=False, img_size=SIZE, num_classes=10,
                       mean=MEAN, std=STD)(factory)
    return name


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """Digits upsampled to 64x64 RGB through the same resize/crop/normalise as calibration folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((SIZE, SIZE), Image.BICUBIC))
            for im in d.images]
    imgs = [np.stack([im] * 3, -1) for im in imgs]
    order = np.random.default_rng(0).permutation(len(imgs))
    train, test = order[:1400], order[1400:]
    x = normalize([center_crop(im, SIZE) for im in imgs], MEAN, STD)
    folder = tmp_path_factory.mktemp("digits_calib")
    for i in train[:80]:  # a real calibration folder (nested), drawn from the training split
        sub = folder / str(d.target[i])
        sub.mkdir(exist_ok=True)
        Image.fromarray(imgs[i]).save(sub / f"{i}.png")
    return {"x_train": x[train], "y_train": d.target[train], "x_test": x[test], "y_test": d.target[test],
            "calib": folder}


def _train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> int:
    """AdamW with a cosine schedule over MAX_STEPS, stopped early at TRAIN_SECONDS; returns steps run."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=MAX_STEPS, pct_start=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model.train()
    step = 0
    for step in range(1, MAX_STEPS + 1):
        idx = torch.randint(0, len(xt), (BATCH,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if time.perf_counter() - start > TRAIN_SECONDS:
            break
    model.eval()
    return step


def _accuracy(path: Path, runtime: str, x: np.ndarray, y: np.ndarray) -> float:
    from edgevit.backends import open_runner

    with open_runner(runtime, path, threads=2) as runner:
        pred = [int(runner.infer(x[i : i + 1]).argmax()) for i in range(len(x))]
    return 100.0 * float((np.array(pred) == y).mean())


TRAINED: dict[str, tuple[Path, float, int, float]] = {}


def _trained(family: str, digits: dict, folder: Path) -> tuple[str, Path, float, int, float]:
    """The family's digits model trained once per session: (name, checkpoint, torch top-1, steps, seconds)."""
    from edgevit.models import MODEL_INIT, build_reference

    name = _register(family)
    if family not in TRAINED:
        model = build_reference(name, init=MODEL_INIT).train()  # trained from the family's own init
        t0 = time.perf_counter()
        steps = _train(model, digits["x_train"], digits["y_train"])
        train_s = time.perf_counter() - t0
        ckpt = folder / f"{name}.pth"
        torch.save({"model": model.state_dict()}, ckpt)
        with torch.no_grad():
            torch_acc = 100.0 * float((model(torch.from_numpy(digits["x_test"])).argmax(1).numpy()
                                       == digits["y_test"]).mean())
        TRAINED[family] = (ckpt, torch_acc, steps, train_s)
    return (name, *TRAINED[family])


TARGETS = {"onnx": ("onnxruntime", ".onnx"), "executorch": ("executorch", ".pte")}


@pytest.mark.parametrize("target", ["onnx", pytest.param("executorch", marks=pytest.mark.slow)])
@pytest.mark.parametrize("family", FAMILIES)
def test_int8_top1_within_one_point_of_fp32(family, target, digits, tmp_path_factory):
    from edgevit.export import export

    module = importlib.import_module(f"edgevit.models.{family}")
    if not hasattr(module, "tiny"):
        pytest.skip(f"{family} has no tiny()")
    if target == "executorch":
        pytest.importorskip("executorch")
    runtime, suffix = TARGETS[target]
    name, ckpt, torch_acc, steps, train_s = _trained(family, digits, tmp_path_factory.mktemp("digits_ckpt"))
    out = tmp_path_factory.mktemp(f"{family}_{target}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = export(name, target=target, checkpoint=ckpt, output=out / f"fp32{suffix}")
        # accuracy, not speed: on these 64 px models int8 may not pay on this host (issue 18's refusal),
        # so the int8 artifact is forced; its selection still keeps float where int8 measured slower
        int8 = export(name, target=target, checkpoint=ckpt, precision="int8", calib_data=digits["calib"],
                      output=out / f"int8{suffix}", int8_force=True)
    assert fp32.verification.passed and int8.verification.passed, int8.verification.reason
    acc32 = _accuracy(fp32.artifact, runtime, digits["x_test"], digits["y_test"])
    acc8 = _accuracy(int8.artifact, runtime, digits["x_test"], digits["y_test"])
    RESULTS[f"{family}/{target}"] = {"torch": torch_acc, "fp32": acc32, "int8": acc8, "train_s": round(train_s, 1),
                                     "steps": steps, "int8_cosine": int8.verification.outputs[0].cosine}
    print(f"\n[int8 digits] {family} {target}: torch {torch_acc:.2f} fp32 {acc32:.2f} int8 {acc8:.2f} "
          f"(cosine {int8.verification.outputs[0].cosine:.5f}, {steps} steps in {train_s:.0f} s)")
    # an untrained model would make the int8 comparison vacuous: fail loudly (a starved CPU shows here)
    assert acc32 > 50.0, f"{family} did not learn digits ({acc32:.1f} % after {steps} steps): proves nothing"
    assert abs(acc32 - torch_acc) < 0.5
    assert acc8 >= acc32 - 1.0, f"{family} {target}: int8 {acc8:.2f} % vs fp32 {acc32:.2f} %"
