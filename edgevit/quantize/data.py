"""Calibration and verification images: the real photos scikit-image ships, or a user folder.

One `CalibrationSet` (normalised NCHW float32 arrays, a deterministic calibration / hold-out split and
an honest description of where the images came from) serves every quantizer and `edgevit.verify`.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgevit.errors import CalibrationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# Below this many calibration images, activation ranges are guesses and int8 accuracy silently
# collapses (Ultralytics warns below 300); 32 is the least that kept cosine >= 0.99 in our tests.
# `calib_samples` given explicitly lowers it (a conscious choice, recorded in the sidecar).
CALIB_FLOOR = 32
DEFAULT_CALIB_SAMPLES = 64
DEFAULT_HOLDOUT = 16
CROP_PCT = 0.875  # resize shorter side to img_size / CROP_PCT, then centre-crop (timm's eval transform)

# Real photographs bundled inside scikit-image (no download). Grey ones are repeated over 3 channels.
EMBEDDED_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "motorcycle_left", "retina", "camera", "moon", "coins", "grass", "gravel", "brick",
)


@dataclass
class CalibrationSet:
    """Normalised images for calibration (`calib`) and a disjoint hold-out for verification."""

    calib: np.ndarray  # (N, 3, H, W) float32, mean/std applied
    holdout: np.ndarray  # (M, 3, H, W) float32
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str  # "skimage.data" or the folder path
    distinct_images: int  # distinct source images behind `calib` + `holdout` (crops are not new images)
    notes: list[str] = field(default_factory=list)

    def batches(self, batch: int = 1) -> Iterator[np.ndarray]:
        """Calibration images in batches of `batch` (the last one may be short)."""
        for i in range(0, len(self.calib), batch):
            yield self.calib[i : i + batch]

    def describe(self) -> dict[str, Any]:
        """What the sidecar records: source, counts and how honest the count is."""
        return {
            "source": self.source,
            "calibration_images": int(len(self.calib)),
            "holdout_images": int(len(self.holdout)),
            "distinct_source_images": self.distinct_images,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------- transforms


def _to_rgb_uint8(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = img.astype(np.float64)
        hi = 1.0 if img.max() <= 1.0 else 255.0
        img = np.clip(img / hi * 255.0, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))  # size is (w, h)


def center_crop(img: np.ndarray, img_size: int, crop_pct: float = CROP_PCT) -> np.ndarray:
    """Resize the shorter side to img_size / crop_pct and centre-crop img_size x img_size (uint8 HWC)."""
    h, w = img.shape[:2]
    short = max(img_size, int(round(img_size / crop_pct)))
    scale = short / min(h, w)
    nw, nh = max(img_size, round(w * scale)), max(img_size, round(h * scale))
    img = _resize(img, (nw, nh))
    top, left = (nh - img_size) // 2, (nw - img_size) // 2
    return img[top : top + img_size, left : left + img_size]


def random_crop(img: np.ndarray, img_size: int, rng: np.random.Generator) -> np.ndarray:
    """A RandomResizedCrop-style view (35-100 % of the area, aspect 3/4-4/3, random h-flip)."""
    h, w = img.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(0.35, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = img[top : top + ch, left : left + cw]
            break
    else:
        crop = img
    out = _resize(np.ascontiguousarray(crop), (img_size, img_size))
    return out[:, ::-1] if rng.random() < 0.5 else out


def normalize(images: Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 HWC images -> float32 NCHW with mean/std applied (values in 0..1 first)."""
    x = np.stack(images).astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------------------------------- sources


def embedded_photos() -> dict[str, np.ndarray]:
    """The real photos scikit-image ships (uint8 RGB), by name; missing ones are skipped."""
    import skimage.data

    out: dict[str, np.ndarray] = {}
    for name in EMBEDDED_PHOTOS:
        try:
            out[name] = _to_rgb_uint8(getattr(skimage.data, name)())
        except Exception:  # a trimmed scikit-image install, or a photo that needs a download
            continue
    if not out:
        raise CalibrationError("scikit-image ships no readable photos here; pass --calib-data DIR")
    return out


def embedded_eval_images(img_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """One centre crop of every embedded photo: the fixed real-photo set `verify` always uses."""
    photos = embedded_photos()
    return normalize([center_crop(p, img_size) for p in photos.values()], mean, std)


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under `folder`, recursively, sorted; CalibrationError when there is none."""
    root = Path(folder)
    if not root.exists():
        raise CalibrationError(f"calibration folder not found: {root}")
    if not root.is_dir():
        raise CalibrationError(f"calibration data must be a folder of images: {root}")
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise CalibrationError(
            f"no images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def read_image(path: Path) -> np.ndarray:
    """One image file as uint8 RGB; CalibrationError naming the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb_uint8(np.asarray(im.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read image {path}: {str(exc).splitlines()[0]}") from None


def _split_key(path: Path, root: Path) -> str:
    return hashlib.sha256(str(path.relative_to(root)).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- builders


def _check_count(requested: int | None, available: int, what: str) -> int:
    if requested is not None:
        if requested < 1:
            raise CalibrationError(f"--calib-samples must be at least 1, got {requested}")
        return requested
    if available < CALIB_FLOOR:
        raise CalibrationError(
            f"only {available} calibration images in {what}; int8 needs at least {CALIB_FLOOR} "
            f"(pass --calib-samples {available} to accept a smaller set knowingly)"
        )
    return min(available, DEFAULT_CALIB_SAMPLES)


def from_folder(
    folder: str | os.PathLike[str],
    *,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    samples: int | None = None,
    holdout: int = DEFAULT_HOLDOUT,
    enforce_floor: bool = True,
) -> CalibrationSet:
    """Calibration set from a folder (recursive). The split is by a hash of each relative path, so it
    is deterministic and a file never moves between calibration and hold-out when others are added."""
    root = Path(folder)
    files = find_images(root)
    ordered = sorted(files, key=lambda p: _split_key(p, root))
    n_hold = min(holdout, len(ordered) // 5)  # at most a fifth of a small folder goes to hold-out
    hold_files, calib_files = ordered[:n_hold], ordered[n_hold:]
    if enforce_floor:
        n_calib = _check_count(samples, len(calib_files), str(root))
    else:  # verification only: the hold-out is what matters
        n_calib = len(calib_files) if samples is None else max(0, samples)
    notes = []
    if n_calib > len(calib_files):
        notes.append(f"asked for {n_calib} calibration images, the folder has {len(calib_files)}; using all")
        n_calib = len(calib_files)
    if enforce_floor and n_calib < CALIB_FLOOR:
        notes.append(f"below the calibration floor of {CALIB_FLOOR} images by explicit request")
    calib = [center_crop(read_image(p), img_size) for p in calib_files[:n_calib]]
    hold = [center_crop(read_image(p), img_size) for p in hold_files]
    empty = np.zeros((0, 3, img_size, img_size), np.float32)
    return CalibrationSet(
        calib=normalize(calib, mean, std) if calib else empty,
        holdout=normalize(hold, mean, std) if hold else np.zeros((0, 3, img_size, img_size), np.float32),
        img_size=img_size,
        mean=tuple(mean),  # type: ignore[arg-type]
        std=tuple(std),  # type: ignore[arg-type]
        source=str(root.resolve()),
        distinct_images=n_calib + len(hold),
        notes=notes,
    )


def from_embedded(
    *,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    samples: int | None = None,
    holdout: int = DEFAULT_HOLDOUT,
    seed: int = 0,
) -> CalibrationSet:
    """Calibration set from scikit-image's photos: random crops/flips reach the count deterministically.

    The photos are few, so calibration and hold-out are different crops of the same photos; the
    sidecar says so (`distinct_source_images`). Use a real folder for real accuracy claims.
    """
    photos = list(embedded_photos().values())
    n_calib = DEFAULT_CALIB_SAMPLES if samples is None else max(0, samples)
    rng = np.random.default_rng(seed)
    calib = [center_crop(p, img_size) for p in photos][:n_calib]
    while len(calib) < n_calib:
        calib.append(random_crop(photos[len(calib) % len(photos)], img_size, rng))
    hold_rng = np.random.default_rng(seed + 1)
    hold = [random_crop(photos[i % len(photos)], img_size, hold_rng) for i in range(holdout)]
    notes = [
        f"{len(photos)} distinct photos from scikit-image; calibration and hold-out are random "
        "crops/flips of the same photos (not independent images)"
    ]
    if 0 < n_calib < CALIB_FLOOR:
        notes.append(f"below the calibration floor of {CALIB_FLOOR} images by explicit request")
    return CalibrationSet(
        calib=normalize(calib, mean, std) if calib else np.zeros((0, 3, img_size, img_size), np.float32),
        holdout=normalize(hold, mean, std),
        img_size=img_size,
        mean=tuple(mean),  # type: ignore[arg-type]
        std=tuple(std),  # type: ignore[arg-type]
        source="skimage.data",
        distinct_images=len(photos),
        notes=notes,
    )


def load_calibration(
    calib_data: str | os.PathLike[str] | None,
    *,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    samples: int | None = None,
    for_calibration: bool = True,
) -> CalibrationSet:
    """A folder when given, else the embedded photos. With `for_calibration=False` (fp32/fp16 exports)
    only the hold-out is needed: no calibration floor, no calibration images."""
    if calib_data is None:
        n = samples if for_calibration else 0
        return from_embedded(img_size=img_size, mean=mean, std=std, samples=n)
    if not for_calibration:
        return from_folder(calib_data, img_size=img_size, mean=mean, std=std, samples=0, enforce_floor=False)
    return from_folder(calib_data, img_size=img_size, mean=mean, std=std, samples=samples)
