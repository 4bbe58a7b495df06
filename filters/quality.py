"""Caption and image quality filters (DataComp's "basic" filter, each bound optional).

Captions are counted in whitespace-separated words (a caption in a script
written without spaces counts as one word per space-free run). Image checks
use the ORIGINAL size recorded by the download stage (``original_width`` /
``original_height``), falling back to ``width`` / ``height``; the resized
bytes would hide a thumbnail that was scaled up. DataComp's values are a
shorter side of 200 px and an aspect ratio of 3.0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from clipcurate.filters.base import Drop


@dataclass(frozen=True)
class QualityConfig:
    min_short_side: int | None = None      # pixels; the original image's shorter side
    max_aspect_ratio: float | None = None  # longer side / shorter side
    min_words: int | None = None
    max_words: int | None = None

    def __post_init__(self):
        for name in ("min_short_side", "min_words", "max_words"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.max_aspect_ratio is not None and self.max_aspect_ratio < 1.0:
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError(f"min_words ({self.min_words}) > max_words ({self.max_words})")

    @property
    def checks_captions(self) -> bool:
        return self.min_words is not None or self.max_words is not None

    @property
    def checks_images(self) -> bool:
        return self.min_short_side is not None or self.max_aspect_ratio is not None


def word_count(caption) -> int:
    return len(str(caption or "").split())


def original_size(row: dict) -> tuple[int, int]:
    w = row.get("original_width") or row.get("width") or 0
    h = row.get("original_height") or row.get("height") or 0
    return int(w), int(h)


class CaptionQuality:
    """Word-count bounds on the caption (cheap: runs before download)."""

    def __init__(self, config: QualityConfig):
        self.min_words = config.min_words
        self.max_words = config.max_words

    def check(self, row: dict) -> Optional[Drop]:
        n = word_count(row.get("caption"))
        if self.min_words is not None and n < self.min_words:
            return Drop("caption_word_count", f"{n} words < {self.min_words}")
        if self.max_words is not None and n > self.max_words:
            return Drop("caption_word_count", f"{n} words > {self.max_words}")
        return None


class ImageQuality:
    """Shorter-side and aspect-ratio bounds on the original image (after download)."""

    def __init__(self, config: QualityConfig):
        self.min_short_side = config.min_short_side
        self.max_aspect_ratio = config.max_aspect_ratio

    def check(self, row: dict) -> Optional[Drop]:
        w, h = original_size(row)
        short, long = min(w, h), max(w, h)
        if self.min_short_side is not None and short < self.min_short_side:
            return Drop("small_image", f"original {w}x{h}: shorter side {short} px < {self.min_short_side}")
        if self.max_aspect_ratio is not None:
            ratio = long / short if short > 0 else float("inf")
            if ratio > self.max_aspect_ratio:
                return Drop("aspect_ratio", f"original {w}x{h}: aspect ratio {ratio:.2f} > {self.max_aspect_ratio}")
        return None
