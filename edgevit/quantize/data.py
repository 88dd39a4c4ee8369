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
from typing import TYPE_CHECKING, Any

import numpy as np

from edgevit.errors import CalibrationError

if TYPE_CHECKING:
    from PIL import Image

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
    """An array of any dtype/range (skimage's photos) as uint8 RGB: floats are 0-1, 16-bit ints 0-65535."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        hi = 65535.0 if img.dtype in (np.uint16, np.int32, np.uint32) and img.max() > 255 else (
            1.0 if img.dtype.kind == "f" and img.max() <= 1.0 else 255.0)
        img = np.clip(img.astype(np.float64) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.shape[-1] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def pil_to_rgb(im: "Image.Image") -> np.ndarray:
    """Every PIL mode into the same 0-255 RGB: 16-bit and 32-bit integer images by their full range
    (PIL's own convert clips them at 255), float images from 0-1, palette/CMYK/alpha through PIL."""
    mode = im.mode
    if mode.startswith("I;16"):
        return _to_rgb_uint8(np.asarray(im, dtype=np.uint16))
    if mode == "I":
        return _to_rgb_uint8(np.asarray(im, dtype=np.int32).clip(0, 65535).astype(np.uint16))
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        return _to_rgb_uint8(np.nan_to_num(arr, nan=0.0).clip(0, None))
    return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _resize_box(img: np.ndarray, size: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """The source region `box` (left, top, right, bottom) resized to size x size (bicubic): only that
    region is touched, so memory and time are bounded by the output, whatever the source's shape."""
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC, box=box))


def center_crop(img: np.ndarray, img_size: int, crop_pct: float = CROP_PCT) -> np.ndarray:
    """Resize the shorter side to img_size / crop_pct and centre-crop img_size x img_size (uint8 HWC),
    done as one resize of the central square of side crop_pct * shorter side (the same transform)."""
    h, w = img.shape[:2]
    side = min(h, w) * min(1.0, crop_pct)
    left, top = (w - side) / 2, (h - side) / 2
    return _resize_box(img, img_size, (left, top, left + side, top + side))


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
    out = _resize_box(np.ascontiguousarray(crop), img_size, (0, 0, crop.shape[1], crop.shape[0]))
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


MAX_PIXELS = 64_000_000  # a declared size above this is refused before decoding (photos are ~12-50 MP)
MIN_SIDE = 8  # shorter side, pixels: below this there is nothing to crop an image from


def read_image(path: Path) -> np.ndarray:
    """One image file as uint8 RGB; CalibrationError naming the file when it cannot or must not be decoded.
    The declared size is checked from the header first, so a decompression bomb never reaches memory."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise CalibrationError(f"image {path} declares {w}x{h} pixels (more than {MAX_PIXELS / 1e6:.0f} MP):"
                                       " refused before decoding; downscale it or leave it out")
            if min(w, h) < MIN_SIDE:
                raise CalibrationError(f"image {path} is {w}x{h} pixels: too small to crop a view from")
            im.load()
            return pil_to_rgb(im)
    except CalibrationError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
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
