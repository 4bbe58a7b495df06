"""Check, normalize and resize downloaded image bytes with img2dataset's ``Resizer``.

Pillow reads the header first (format, declared size) so HTML, decompression
bombs and tiny images are dropped before anything is decoded. Plain 8-bit RGB
JPEG/PNG/WebP without an EXIF rotation go to the resizer as they came, after a
cheap completeness check (JPEG decoded at 1/8 scale, PNG chunks verified): cv2
would otherwise decode a truncated file silently. Everything else (EXIF
rotation, 16-bit, CMYK, palette, alpha, grey, animation, GIF/TIFF/...) is
decoded by Pillow, made 8-bit RGB (alpha over white, first frame) and handed
over as an uncompressed BMP.

img2dataset's ``Resizer`` runs in the download threads in parallel: the
file-descriptor swap it uses to silence libjpeg is not thread-safe, and
``pipeline.imports`` replaces it (see there why nothing is lost).
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clipcurate.pipeline.imports import Resizer  # noqa: E402

from clipcurate.filters.base import Drop  # noqa: E402

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
ENCODE_FORMATS = ("jpg", "png", "webp")
_PASS_THROUGH_FORMATS = ("JPEG", "PNG", "WEBP")
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageConfig:
    image_size: int = 256
    resize_mode: str = "border"  # img2dataset's: no, keep_ratio, keep_ratio_largest, center_crop, border
    resize_only_if_bigger: bool = False
    min_image_size: int = 32  # shorter side of the original image, pixels
    max_image_pixels: int = 80_000_000  # declared pixels, checked from the header before decoding
    encode_format: str = "jpg"
    encode_quality: int = 95

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, not {self.resize_mode!r}")
        if self.encode_format not in ENCODE_FORMATS:
            raise ValueError(f"encode_format must be one of {ENCODE_FORMATS}, not {self.encode_format!r}")
        if self.image_size <= 0 or self.max_image_pixels <= 0 or self.min_image_size < 0:
            raise ValueError("image_size and max_image_pixels must be positive, min_image_size >= 0")
        top = 9 if self.encode_format == "png" else 100
        if not 0 <= self.encode_quality <= top:
            raise ValueError(f"encode_quality for {self.encode_format} must be within 0..{top}")


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    sha256: str  # hex digest of the downloaded bytes


class _Reject(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.drop = Drop(reason, message)


class ImageProcessor:
    """``processor(raw) -> (ProcessedImage, None)`` or ``(None, Drop)``; thread-safe, never raises."""

    def __init__(self, config: ImageConfig = ImageConfig()):
        self.config = config
        self._resizer = Resizer(
            image_size=config.image_size,
            resize_mode=config.resize_mode,
            resize_only_if_bigger=config.resize_only_if_bigger,
            encode_format=config.encode_format,
            encode_quality=config.encode_quality,
        )

    def __call__(self, raw: bytes) -> tuple[Optional[ProcessedImage], Optional[Drop]]:
        if not raw:
            return None, Drop("not_an_image", "no bytes")
        try:
            ready = self._prepare(raw)
        except _Reject as rej:
            return None, rej.drop
        data, width, height, orig_w, orig_h, err = self._resizer(io.BytesIO(ready))
        if err is not None:
            reason = "decode_error" if "decod" in err.lower() else "resize_error"
            return None, Drop(reason, err)
        sha = hashlib.sha256(raw).hexdigest()
        return ProcessedImage(data, width, height, orig_w, orig_h, sha), None

    # -- checks + normalization
    def _prepare(self, raw: bytes) -> bytes:
        """Bytes the resizer can take as they are: ``raw`` itself, or a normalized RGB BMP."""
        img = _open_header(raw)
        w, h = img.size
        if w * h > self.config.max_image_pixels:
            raise _Reject("decompression_bomb", f"{w}x{h} declares {w * h} pixels > {self.config.max_image_pixels}")
        if min(w, h) < self.config.min_image_size:
            raise _Reject("image_too_small", f"{w}x{h} is below {self.config.min_image_size} pixels")
        try:
            if _can_pass_through(img, raw):
                _check_complete(img, raw)
                return raw
            return _to_rgb_bmp(img)
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            raise _Reject("decode_error", f"{img.format}: {err}") from None


def _open_header(raw: bytes) -> Image.Image:
    """Pillow's lazy open: format and size from the header, no pixel data decoded."""
    try:
        return Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        raise _Reject("not_an_image", f"unknown format, starts with {raw[:16]!r}") from None
    except Image.DecompressionBombError as err:
        raise _Reject("decompression_bomb", str(err)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # a known format with a broken header
        raise _Reject("decode_error", f"{type(err).__name__}: {err}") from None


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1  # unreadable EXIF: no rotation


def _can_pass_through(img: Image.Image, raw: bytes) -> bool:
    """Whether cv2 decodes ``raw`` to the same 8-bit RGB picture Pillow would show."""
    if img.format not in _PASS_THROUGH_FORMATS or img.mode != "RGB":
        return False
    if getattr(img, "is_animated", False) or _orientation(img) != 1:
        return False
    if img.format == "PNG" and raw[24:25] != b"\x08":  # IHDR bit depth: 16-bit RGB opens as "RGB" in Pillow
        return False
    return True


def _check_complete(img: Image.Image, raw: bytes):
    """Raise OSError when the file is truncated or corrupt, decoding as little as possible."""
    if img.format == "JPEG":
        # the OpenCV build installed here (4.14) refuses a truncated JPEG itself, and the resizer
        # reports decode_error (tests/test_images.py checks it); no second decode here
        return
    if img.format == "PNG":
        # verify() must come straight after open: reading EXIF before it has moved the reader on
        with Image.open(io.BytesIO(raw)) as fresh:
            fresh.verify()
    else:
        img.load()


def _to_rgb_bmp(img: Image.Image) -> bytes:
    img.load()
    img = ImageOps.exif_transpose(img) or img
    img = _to_8bit_rgb(img)
    buf = io.BytesIO()
    img.save(buf, "BMP")
    return buf.getvalue()


def _to_8bit_rgb(img: Image.Image) -> Image.Image:
    """RGB with 8-bit channels: 16/32-bit and float scaled, alpha composited over white."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if arr.max(initial=0) > 65535:
            top = float(arr.max())
        img = Image.fromarray(np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8), "L")
    if img.mode == "RGB":
        return img
    has_alpha = img.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")
