"""Pictures drawn from a seed: labelled shapes and word images.

The demo's seed set and web, the textness probe's training pictures and the tests all draw with
this one renderer. Deterministic given a numpy Generator.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABELS = (
    "circle", "square", "triangle", "star", "heart",
    "cross", "ring", "arrow", "moon", "hexagon",
    "pentagon", "diamond",
)

COLORS = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (240, 210, 40),
    "green": (50, 170, 70), "blue": (40, 90, 220), "purple": (140, 60, 190),
    "pink": (240, 120, 180), "brown": (130, 80, 40), "black": (20, 20, 20),
    "white": (245, 245, 245), "gray": (128, 128, 128), "teal": (30, 150, 150),
}

def _regular(n: int, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * i / n), math.sin(phase + 2 * math.pi * i / n)) for i in range(n)]


def _star() -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        r = 1.0 if i % 2 == 0 else 0.42
        a = -math.pi / 2 + math.pi * i / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _heart() -> list[tuple[float, float]]:
    pts = []
    for i in range(64):
        t = 2 * math.pi * i / 64
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((x / 17.0, -y / 17.0 + 0.1))
    return pts


def _cross() -> list[tuple[float, float]]:
    a, b = 0.33, 1.0
    return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]


def _arrow() -> list[tuple[float, float]]:
    return [(-1.0, -0.25), (0.2, -0.25), (0.2, -0.65), (1.0, 0.0), (0.2, 0.65), (0.2, 0.25), (-1.0, 0.25)]


# Each shape: list of (polygon, fill) drawn in order on a mask; fill 0 cuts a hole.
_SHAPES = {
    "circle": lambda: [(_regular(64), 255)],
    "square": lambda: [([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)], 255)],
    "triangle": lambda: [(_regular(3), 255)],
    "star": lambda: [(_star(), 255)],
    "heart": lambda: [(_heart(), 255)],
    "cross": lambda: [(_cross(), 255)],
    "ring": lambda: [(_regular(64), 255), ([(0.6 * x, 0.6 * y) for x, y in _regular(64)], 0)],
    "arrow": lambda: [(_arrow(), 255)],
    "moon": lambda: [(_regular(64), 255), ([(0.85 * x + 0.45, 0.85 * y - 0.15) for x, y in _regular(64)], 0)],
    "hexagon": lambda: [(_regular(6, 0.0), 255)],
    "pentagon": lambda: [(_regular(5), 255)],
    "diamond": lambda: [([(0.0, -1.0), (0.55, 0.0), (0.0, 1.0), (-0.55, 0.0)], 255)],
}


def _pick_colors(rng: np.random.Generator) -> tuple[str, str]:
    names = list(COLORS)
    fg = names[int(rng.integers(len(names)))]
    while True:
        bg = names[int(rng.integers(len(names)))]
        if bg != fg and sum(abs(a - b) for a, b in zip(COLORS[fg], COLORS[bg])) > 150:
            return fg, bg


def _jitter(color: tuple[int, int, int], rng: np.random.Generator, amount: int = 25) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in color)


def _background(rng: np.random.Generator, size: int, color: tuple[int, int, int]) -> Image.Image:
    base = np.empty((size, size, 3), dtype=np.float32)
    base[:] = _jitter(color, rng)
    if rng.random() < 0.4:  # a linear gradient towards another shade
        other = np.array(_jitter(color, rng, 60), dtype=np.float32)
        ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
        ramp = ramp[:, None] if rng.random() < 0.5 else ramp[None, :]
        base = base * (1 - ramp[..., None]) + other * ramp[..., None]
    return Image.fromarray(base.clip(0, 255).astype(np.uint8))


def _add_noise(image: Image.Image, rng: np.random.Generator, sigma: float) -> Image.Image:
    arr = np.asarray(image, dtype=np.float32)
    arr = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def make_sample(label: str, rng: np.random.Generator, size: int = 64) -> tuple[Image.Image, dict]:
    """One RGB image of ``label`` and what was drawn (colour names, scale, angle)."""
    if label not in _SHAPES:
        raise ValueError(f"unknown shape {label!r}; known: {', '.join(LABELS)}")
    fg, bg = _pick_colors(rng)
    scale = float(rng.uniform(0.22, 0.42))
    angle = float(rng.uniform(0, 2 * math.pi))
    cx = float(rng.uniform(scale + 0.03, 1 - scale - 0.03))
    cy = float(rng.uniform(scale + 0.03, 1 - scale - 0.03))
    big = size * 3  # draw large, then downsample: anti-aliased edges
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    cos, sin = math.cos(angle), math.sin(angle)
    for poly, fill in _SHAPES[label]():
        pts = [((cx + scale * (x * cos - y * sin)) * big, (cy + scale * (x * sin + y * cos)) * big) for x, y in poly]
        draw.polygon(pts, fill=fill)
    mask = mask.resize((size, size), Image.Resampling.LANCZOS)
    image = _background(rng, size, COLORS[bg])
    image.paste(Image.new("RGB", (size, size), _jitter(COLORS[fg], rng)), (0, 0), mask)
    if rng.random() < 0.3:
        image = _add_noise(image, rng, float(rng.uniform(3, 12)))
    return image, {"label": label, "color": fg, "background": bg, "scale": scale, "angle": angle}


def make_image(label: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One RGB image of the shape ``label`` with random colours, size, position, rotation."""
    return make_sample(label, rng, size)[0]


def make_text_image(word: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """An image that is mostly text: ``word`` in PIL's default font, scaled up."""
    fg, bg = _pick_colors(rng)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), word, font=font)
    small = Image.new("L", (max(1, right - left) + 2, max(1, bottom - top) + 2), 0)
    ImageDraw.Draw(small).text((1 - left, 1 - top), word, fill=255, font=font)
    width = int(size * rng.uniform(0.6, 0.95))
    height = max(1, min(size, round(small.height * width / small.width)))
    mask = small.resize((width, height), Image.Resampling.NEAREST)
    image = _background(rng, size, COLORS[bg])
    x = int(rng.integers(0, size - width + 1))
    y = int(rng.integers(0, size - height + 1))
    image.paste(Image.new("RGB", mask.size, _jitter(COLORS[fg], rng)), (x, y), mask)
    return image


def encode_jpeg(image: Image.Image, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
