"""Training data for the bootstrap CLIP: seed folders, curated shards, augmentation.

A ``Sample`` is a decoded image with either a label (its caption is drawn
fresh each time from varied prompts) or a fixed caption (a web pair). Images
are augmented in two places: random resized crop, flip and JPEG re-encoding
in PIL (so seed images look more like web bytes); colour jitter, grayscale,
channel shuffles, inversion and quarter turns on the batch tensor (cheap).
"""
from __future__ import annotations

import io
import math
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class Sample:
    image: Image.Image
    group: int                      # pairs sharing a group are all positives for each other
    label: Optional[str] = None     # seed sample: caption drawn from prompts for this label
    caption: Optional[str] = None   # web pair: its own caption


@dataclass(frozen=True)
class AugmentConfig:
    # mild crops: stronger ones (0.8-1 of the area, 3:4-4:3) cost ~5 points of zero-shot
    # accuracy at the same training time (on benchmarks/bootstrap.py's data)
    crop_scale: tuple[float, float] = (0.9, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    flip: float = 0.5
    jpeg: float = 0.1              # probability of re-encoding as JPEG
    jpeg_quality: tuple[int, int] = (20, 95)
    # batch-level (on tensors, cheap): colour, and what a shape's identity does not depend on
    jitter: float = 0.1            # brightness, contrast, saturation factors in 1 +- jitter
    grayscale: float = 0.05
    channel_shuffle: float = 0.8   # permute the RGB channels: colour is not the concept
    invert: float = 0.3            # negate the normalized pixels (light-on-dark vs dark-on-light)
    rot90: bool = True             # quarter turns


def decode_image(data: bytes, max_side: int) -> Image.Image:
    """Encoded bytes -> RGB image, shrunk so its shorter side is at most ``max_side``.

    Raises ValueError for bytes PIL cannot read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (max_side, max_side))
            image = im.convert("RGB")
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot decode image: {err}") from None
    short = min(image.size)
    if short > max_side:
        w, h = image.size
        image = image.resize((max(1, round(w * max_side / short)), max(1, round(h * max_side / short))),
                             Image.Resampling.BICUBIC)
    return image


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side resized to ``size`` (bicubic), then the central square."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def augment(image: Image.Image, rng: random.Random, size: int, config: AugmentConfig = AugmentConfig()) -> Image.Image:
    """A random view of ``image``, ``size`` x ``size``."""
    w, h = image.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(*config.crop_scale)
        ratio = math.exp(rng.uniform(math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1])))
        cw, ch = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            image = image.crop((left, top, left + cw, top + ch)).resize((size, size), Image.Resampling.BICUBIC)
            break
    else:
        image = center_crop(image, size)
    if rng.random() < config.flip:
        image = ImageOps.mirror(image)
    if rng.random() < config.jpeg:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=rng.randint(*config.jpeg_quality))
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return image


def _jitter(pixels: torch.Tensor, generator: torch.Generator, config: AugmentConfig, mean, std) -> torch.Tensor:
    """Brightness, contrast and saturation factors in 1 +- jitter, then grayscale, on the 0-1 pixels."""
    n = pixels.shape[0]
    mean = torch.as_tensor(mean, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=pixels.dtype).view(1, 3, 1, 1)
    x = pixels * std + mean
    factors = 1 + config.jitter * (2 * torch.rand(n, 3, 1, 1, 1, generator=generator, dtype=pixels.dtype) - 1)
    luma = torch.tensor([0.299, 0.587, 0.114], dtype=pixels.dtype).view(1, 3, 1, 1)
    x = x * factors[:, 0]                                                   # brightness
    gray = (x * luma).sum(dim=1, keepdim=True)
    level = gray.mean(dim=(2, 3), keepdim=True)
    x = level + factors[:, 1] * (x - level)                                 # contrast
    gray = (x * luma).sum(dim=1, keepdim=True)
    x = gray + factors[:, 2] * (x - gray)                                   # saturation
    if config.grayscale:
        to_gray = (torch.rand(n, generator=generator) < config.grayscale)[:, None, None, None]
        x = torch.where(to_gray, (x * luma).sum(dim=1, keepdim=True).expand_as(x), x)
    return (x.clamp(0, 1) - mean) / std


def augment_batch(pixels: torch.Tensor, generator: torch.Generator, mean, std,
                  config: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Colour and orientation augmentation of a batch (n, 3, h, w) normalized with ``mean`` and ``std``, per image."""
    n = pixels.shape[0]
    if config.jitter or config.grayscale:
        pixels = _jitter(pixels, generator, config, mean, std)
    if config.channel_shuffle:
        perms = torch.stack([torch.randperm(3, generator=generator) for _ in range(n)])
        keep = torch.rand(n, generator=generator) >= config.channel_shuffle
        perms[keep] = torch.arange(3)
        pixels = torch.gather(pixels, 1, perms[:, :, None, None].expand_as(pixels))
    if config.invert:
        flip = (torch.rand(n, generator=generator) < config.invert)[:, None, None, None]
        pixels = torch.where(flip, -pixels, pixels)
    if config.rot90:
        turns = torch.randint(0, 4, (n,), generator=generator)
        pixels = torch.stack([torch.rot90(p, int(k), (1, 2)) for p, k in zip(pixels, turns)])
    return pixels


def to_tensor(images: Sequence[Image.Image], mean, std) -> torch.Tensor:
    """RGB images of one size -> normalized float tensor (n, 3, h, w)."""
    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in images]).astype(np.float32) / 255.0
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


# --- sources -------------------------------------------------------------------

def shard_files(path) -> list[Path]:
    """The .tar shards at ``path``: a .tar file, a folder of them, or a pipeline
    output folder (its ``shards/``). Empty when there are none."""
    path = Path(path)
    if path.is_file() and path.suffix == ".tar":
        return [path]
    if not path.is_dir():
        return []
    for folder in (path, path / "shards"):
        found = sorted(p for p in folder.glob("*.tar") if p.is_file())
        if found:
            return found
    return []


def read_shard_pairs(path) -> list[tuple[bytes, str]]:
    """(image bytes, caption) for every KEY.jpg + KEY.txt in WebDataset shards, in shard and key order."""
    pairs = []
    for shard in shard_files(path):
        images: dict[str, bytes] = {}
        captions: dict[str, str] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, dot, ext = member.name.rpartition(".")
                if not dot:
                    continue
                ext = "." + ext.lower()
                if ext in IMAGE_SUFFIXES:
                    images[key] = tar.extractfile(member).read()
                elif ext == ".txt":
                    captions[key] = tar.extractfile(member).read().decode("utf-8", errors="replace").strip()
        pairs.extend((images[k], captions[k]) for k in sorted(images) if captions.get(k))
    return pairs


def read_seed_images(images: Sequence[tuple[str, str]], max_side: int) -> list[Sample]:
    """Decoded samples of a seed set's (local path, label) pairs; group = label index."""
    labels = sorted({label for _, label in images})
    index = {label: i for i, label in enumerate(labels)}
    samples = []
    for path, label in images:
        try:
            image = decode_image(Path(path).read_bytes(), max_side)
        except (OSError, ValueError):
            continue  # unreadable seed image: skipped, as the pipeline would reject it
        samples.append(Sample(image=image, group=index[label], label=label))
    return samples


def pair_samples(pairs: Sequence[tuple[bytes, str]], max_side: int, first_group: int) -> list[Sample]:
    """Web pairs as samples, each its own group; undecodable images are skipped."""
    samples = []
    for image_bytes, caption in pairs:
        try:
            image = decode_image(image_bytes, max_side)
        except ValueError:
            continue
        samples.append(Sample(image=image, group=first_group + len(samples), caption=caption))
    return samples
