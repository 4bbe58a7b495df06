"""A 64-bit perceptual hash (pHash) of image bytes, and helpers to compare hashes.

pHash: the image in grayscale at 32x32, its 2-D DCT, the 8x8 lowest
frequencies; bit i is set when coefficient i is above the median of the 63
non-DC coefficients (the DC term, the mean brightness, is left out of the
median). Re-encoding, resizing and mild colour changes move few bits; a
different picture moves about half. Written as 16 lowercase hex digits.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

SIZE = 32
LOW = 8
BITS = LOW * LOW


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix D, so that D @ x is the DCT of a column x."""
    n = np.arange(SIZE)
    d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * SIZE)) * np.sqrt(2.0 / SIZE)
    d[0] /= np.sqrt(2.0)
    return d


def phash_int(image: bytes) -> int:
    with Image.open(io.BytesIO(image)) as img:
        img.draft("L", (SIZE * 2, SIZE * 2))  # JPEG: decode at a reduced scale, much faster
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img)
        small = img.convert("L").resize((SIZE, SIZE), Image.Resampling.BOX)
    return phash_of_pixels(np.asarray(small, dtype=np.float64))


def phash_of_pixels(pixels: np.ndarray) -> int:
    """The pHash of a SIZE x SIZE grey picture (floats)."""
    d = _dct_matrix()
    low = (d @ pixels @ d.T)[:LOW, :LOW].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phash(image: bytes) -> str:
    """The 16-hex-digit perceptual hash of encoded image bytes."""
    return f"{phash_int(image):016x}"


def hamming(a: str | int, b: str | int) -> int:
    a = int(a, 16) if isinstance(a, str) else a
    b = int(b, 16) if isinstance(b, str) else b
    return (a ^ b).bit_count()


def even_widths(n: int, parts: int) -> list[int]:
    """``n`` bits split into ``parts`` nearly equal runs (the first ones a bit wider)."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def band_widths(bands: int) -> list[int]:
    """Bits per band: 64 bits split into ``bands`` nearly equal runs."""
    return even_widths(BITS, bands)


def band_spans(bands: int) -> list[tuple[int, int]]:
    """(shift, width) of each band, band 0 the highest bits: band i is ``(value >> shift) & (2**width - 1)``."""
    out, shift = [], BITS
    for width in band_widths(bands):
        shift -= width
        out.append((shift, width))
    return out


def band_keys(value: int, bands: int) -> list[tuple[int, int]]:
    """(band index, band bits) for each band of a hash.

    Two hashes within Hamming distance d < bands agree exactly on at least
    one band (pigeonhole), so grouping by band key finds every such pair.
    """
    return [(i, (value >> shift) & ((1 << width) - 1)) for i, (shift, width) in enumerate(band_spans(bands))]
