"""Synthetic labelled images of shapes, and web-style captions for them.

Deterministic given a seed: the bootstrap benchmark and tests use it as a
seed set, the demo uses it to build a noisy "web" of image/caption pairs.
The pictures themselves come from ``pipeline.media.draw``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from clipcurate.pipeline.files import atomic_write
from clipcurate.pipeline.media.draw import (  # noqa: F401  (the demo's picture set, used through this module)
    COLORS, LABELS, encode_jpeg, make_image, make_sample, make_text_image,
)

# Caption styles unlike the training prompts: used to measure how the text
# side generalizes, and by the demo to caption its synthetic web.
WEB_CAPTION_STYLES = (
    "{color} {label} sticker, vector art",
    "buy {label} shaped wall decal in {color}",
    "{label} emoji transparent png",
    "minimal {label} symbol, {color} on {color2}",
    "cute {color} {label} drawing for kids",
    "{label}-shaped badge | stock illustration",
    "free download: {color} {label} graphic",
    "my {label} doodle from art class",
    "{color2} background with a big {color} {label}",
    "simple flat {label} design element",
)



def make_web_caption(label: str, rng: np.random.Generator, color: str | None = None) -> str:
    """A web-style alt text naming ``label``, in a style unlike the training prompts."""
    names = list(COLORS)
    style = WEB_CAPTION_STYLES[int(rng.integers(len(WEB_CAPTION_STYLES)))]
    color = color or names[int(rng.integers(len(names)))]
    color2 = names[int(rng.integers(len(names)))]
    return style.format(label=label, color=color, color2=color2)


def write_image_folder(directory, labels=LABELS[:10], per_label: int = 100, seed: int = 0, size: int = 64) -> list[Path]:
    """Write an ImageFolder ``directory/LABEL/LABEL_00000.jpg``; returns the paths written."""
    root = Path(directory)
    paths = []
    for index, label in enumerate(labels):
        rng = np.random.default_rng([seed, index])
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            path = folder / f"{label}_{i:05d}.jpg"
            atomic_write(path, encode_jpeg(make_image(label, rng, size)))
            paths.append(path)
    return paths
