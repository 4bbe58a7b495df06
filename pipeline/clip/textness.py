"""Textness: a linear probe on CLIP image embeddings that tells pictures with text from pictures without.

CLIP scores an image that merely shows the caption's words highly (the
"typographic" effect PicCollage describes for CLIP search). The probe is a
logistic regression trained on pictures we render ourselves: the same shape
pictures with and without words drawn on them. It gives each sample a
``textness`` score in [0, 1], and its direction can bias the text embedding:
``text + bias * direction`` (not renormalized) moves the score toward
(bias > 0) or away from (bias < 0) images with text.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw, ImageFont

from clipcurate.pipeline.media import draw
from clipcurate.pipeline.files import atomic_write_text, read_bytes

PROBE_FILE = "textness.json"
WORDS = ("star", "sale", "hello", "circle", "love", "free", "moon", "cat", "open", "news", "heart", "shop",
         "arrow", "best", "dog", "cross", "ring", "square", "music", "home", "triangle", "summer", "logo", "menu")


@dataclass(frozen=True)
class TextnessProbe:
    weights: np.ndarray     # (d,) logistic weights on the raw embedding
    bias: float

    @property
    def direction(self) -> np.ndarray:
        """The probe's direction: the unit vector along which textness grows."""
        return self.weights / (np.linalg.norm(self.weights) + 1e-12)

    def score(self, image_embeddings: np.ndarray) -> np.ndarray:
        z = image_embeddings.astype(np.float64) @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def bias_texts(self, text_embeddings: np.ndarray, strength: float) -> np.ndarray:
        """``text + strength * direction``, not renormalized: an image's similarity moves by
        ``strength`` times its own projection on the direction, so text-heavy images move most."""
        if strength == 0:
            return text_embeddings
        return (text_embeddings + strength * self.direction.astype(np.float32)).astype(np.float32)

    def save(self, path: str) -> None:
        atomic_write_text(path, json.dumps({"weights": self.weights.tolist(), "bias": self.bias}))

    @classmethod
    def load(cls, path: str) -> "TextnessProbe":
        data = json.loads(read_bytes(path))
        return cls(np.asarray(data["weights"], dtype=np.float64), float(data["bias"]))


def draw_word(image, word: str, rng: np.random.Generator):
    """The picture with ``word`` written across it, large, in a contrasting colour."""
    image = image.copy()
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(image)
    left, top, right, bottom = probe.textbbox((0, 0), word, font=font)
    from PIL import Image

    small = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(small).text((1 - left, 1 - top), word, fill=255, font=font)
    width = int(image.width * rng.uniform(0.6, 0.95))
    height = max(1, min(image.height, round(small.height * width / small.width)))
    mask = small.resize((width, height), Image.Resampling.NEAREST)
    x = int(rng.integers(0, image.width - width + 1))
    y = int(rng.integers(0, image.height - height + 1))
    shade = 255 if np.asarray(image.convert("L")).mean() < 128 else 0
    image.paste(Image.new("RGB", mask.size, (shade, shade, shade)), (x, y), mask)
    return image


def rendered_pairs(n: int, size: int, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    """2n encoded pictures: n shape pictures (label 0), and n with words (label 1): the same
    picture with a word drawn over it, or a word alone on a plain background."""
    rng = np.random.default_rng([seed, 42])
    images, labels = [], []
    for i in range(n):
        label = draw.LABELS[i % len(draw.LABELS)]
        picture = draw.make_image(label, rng, size)
        images.append(draw.encode_jpeg(picture, 90))
        labels.append(0)
        word = WORDS[int(rng.integers(len(WORDS)))]
        # half the words written over the picture, half alone on a plain background
        texty = draw_word(picture, word, rng) if i % 2 == 0 else draw.make_text_image(word, rng, size)
        images.append(draw.encode_jpeg(texty, 90))
        labels.append(1)
    return images, np.asarray(labels, dtype=np.float64)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 1000, lr: float = 0.5) -> tuple[np.ndarray, float]:
    """L2-regularized logistic regression by full-batch gradient descent (deterministic).

    Features are standardized while fitting (unit-norm embeddings have tiny
    components), and the weights are mapped back to the raw features.
    """
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / std
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w + b, -50, 50)))
        g = p - y
        w -= lr * (z.T @ g / len(y) + l2 * w)
        b -= lr * float(g.mean())
    raw_w = w / std
    return raw_w, float(b - mean @ raw_w)


def train_probe(scorer, n: int = 200, size: int = 128, seed: int = 0) -> tuple[TextnessProbe, float]:
    """(probe, accuracy on a held-out quarter of the rendered pictures)."""
    images, labels = rendered_pairs(n, size, seed)
    emb = scorer.embed_images(images).astype(np.float64)
    cut = (len(labels) * 3 // 4) // 2 * 2
    w, b = fit_logistic(emb[:cut], labels[:cut])
    probe = TextnessProbe(w, b)
    accuracy = float(((probe.score(emb[cut:]) > 0.5) == (labels[cut:] > 0.5)).mean())
    return probe, accuracy


def default_probe_path(model_spec: str) -> str | None:
    """Where a model's probe is kept: MODEL_DIR/textness.json (a bootstrap folder, or hf:DIR's DIR),
    WEIGHTS.textness.json beside an open_clip checkpoint."""
    if model_spec.startswith("hf:"):
        return os.path.join(model_spec[len("hf:"):], PROBE_FILE)
    if model_spec.startswith("open_clip:"):
        weights = model_spec.split(":", 2)[-1]
        return weights + "." + PROBE_FILE if weights else None
    return os.path.join(model_spec, PROBE_FILE)


def train_and_save(scorer, path: str) -> tuple[TextnessProbe, float]:
    """Train the probe for a loaded model once and save it at ``path``; (probe, held-out accuracy)."""
    probe, accuracy = train_probe(scorer)
    probe.save(path)
    return probe, accuracy