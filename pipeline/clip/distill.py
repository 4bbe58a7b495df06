"""Distilling any CLIP into a small bootstrap-format student (a production team's recipe:
KL on the similarity distributions plus L1 on the embeddings).

The teacher is any scorer spec (bootstrap folder, ``hf:DIR``, ``open_clip:ARCH:W``); the
student is our own small CLIP (fewer, narrower layers and a smaller input), saved as a
bootstrap model folder, so ``--clip STUDENT_DIR`` scores with it.

- Teacher outputs are computed once, before training, and cached: for every pair and every
  *view* (view 0: the pair's own bytes and caption, exactly what a run scores; views 1..K-1:
  a random crop, flip, turn, channel order or JPEG re-encoding of the image, word dropout in the
  caption).
  Each epoch the student meets every pair in one of its views, so augmentation costs no
  teacher passes and the targets are exact for the view the student sees.
- The student reads each view's bytes the way its scorer will (decode, shorter side to its
  input size, centre square), so training and scoring preprocess alike.
- Loss, per batch of n pairs: ``kl_weight * KL + l1_weight * L1``.
  KL: the teacher's and the student's softmax over the n x n in-batch similarities, image ->
  text (rows) and text -> image (columns), averaged; both sides at the *same* fixed logit
  scale: the teacher's own (its ``logit_scale``, clamped, for a bootstrap teacher) or 100
  (where trained CLIPs end up, for ``hf:``/``open_clip:`` teachers), or ``teacher_scale``
  when given. The student's temperature is frozen at that scale and saved with it.
  L1: the distance between the student's and the teacher's normalized embeddings (summed
  over dimensions, averaged over pairs and the two towers). The student's projection has the
  teacher's embedding size, so its embeddings are trained to lie in the teacher's own space
  (no extra learned map to keep or apply): the cosine similarity a run thresholds is then
  the teacher's, approximately, not only its ranking.
- The tokenizer: a bootstrap teacher's own (copied); for other teachers a byte-level BPE
  trained on the data's captions.

Held in memory: the pairs' bytes, and per view the teacher's embeddings and the images at the
student's input size (24 px: 1.7 KB a view), so about 15 KB a pair with 8 views; the teacher
costs one scoring pass over the data per view. Meant for up to a few hundred thousand pairs
on one machine.
"""
from __future__ import annotations

import io
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from clipcurate.pipeline.clip import store
from clipcurate.pipeline.clip.data import (
    AugmentConfig, augment, center_crop, decode_image,
)
from clipcurate.pipeline.clip.model import Clip, ClipConfig
from clipcurate.pipeline.clip.text import (
    ClipTokenizer, TokenizerConfig, perturb_caption, seed_corpus, train_tokenizer,
)
from clipcurate.pipeline.clip.train import (
    WEB_CAPTION_STYLE, TrainConfig, _optimizer, _schedule, resolve_device,
)
from clipcurate.pipeline.files import atomic_write_text

PHASE = "distill"
INFO = "distill.json"
DEFAULT_SCALE = 100.0   # the logit scale of hf:/open_clip: teachers (trained CLIPs end at the clamp, 100)
VIEW_SIDE = 256         # augmented views are drawn at most this large (then re-encoded for the teacher)
# views other than the first: crops, flips, quarter turns, channel orders, JPEG re-encoding.
# The teacher scores every view itself, so its targets are exact whatever the view: the
# augmentation need not be one the teacher is invariant to, only varied ("function matching",
# Beyer et al. 2022: the same view to teacher and student, strong augmentation, long training),
# so that the student learns the teacher's function around the data, not on its few pictures.
VIEW_AUGMENT = AugmentConfig(crop_scale=(0.5, 1.0), crop_ratio=(0.75, 1.33), flip=0.5, jpeg=0.3,
                             jpeg_quality=(40, 95))
VIEW_TURN = 0.5       # probability of a quarter, half or three-quarter turn
VIEW_CHANNELS = 0.3   # probability of permuted colour channels


@dataclass(frozen=True)
class StudentShape:
    """The student's architecture: one width and depth for both towers."""

    image_size: int = 24
    patch_size: int = 8
    width: int = 64
    layers: int = 1

    def __post_init__(self):
        if self.width < 8:
            raise ValueError(f"student width must be >= 8, not {self.width}")

    def clip_config(self, embed_dim: int, vocab_size: int, context_length: int) -> ClipConfig:
        heads = max(1, self.width // 32)
        while self.width % heads:
            heads -= 1
        return ClipConfig(image_size=self.image_size, patch_size=self.patch_size,
                          vision_width=self.width, vision_layers=self.layers, vision_heads=heads,
                          text_width=self.width, text_layers=self.layers, text_heads=heads,
                          context_length=context_length, vocab_size=vocab_size, embed_dim=embed_dim)


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    views: int = 8                      # teacher-scored views per pair (1: the pair itself only)
    kl_weight: float = 1.0
    l1_weight: float = 1.0
    teacher_scale: float | None = None  # None: the teacher's own logit scale, or DEFAULT_SCALE
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda
    progress: bool = True

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("epochs must be >= 1, batch size >= 2 and learning rate > 0")
        if self.views < 1:
            raise ValueError(f"views must be >= 1, not {self.views}")
        if self.kl_weight < 0 or self.l1_weight < 0 or self.kl_weight + self.l1_weight == 0:
            raise ValueError("the KL and L1 weights must be >= 0 and not both 0")
        if self.teacher_scale is not None and not 0 < self.teacher_scale <= 1000:
            raise ValueError(f"teacher scale must be in (0, 1000], not {self.teacher_scale}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")


@dataclass(frozen=True)
class DistillSummary:
    pairs: int
    views: int
    scale: float
    teacher_seconds: float
    train_seconds: float
    loss: float
    kl: float
    l1: float


def _say(config: DistillConfig, message: str) -> None:
    if config.progress:
        print(message, file=sys.stderr, flush=True)


def teacher_scale(spec: str) -> float:
    """A bootstrap teacher's own logit scale (clamped as it scores), else ``DEFAULT_SCALE``."""
    if spec.startswith(("hf:", "open_clip:")) or not store.is_model_dir(spec):
        return DEFAULT_SCALE
    from safetensors import safe_open

    with safe_open(str(Path(spec) / store.WEIGHTS), framework="pt") as f:
        log_scale = float(f.get_tensor("logit_scale"))
    limit = ClipConfig.from_dict(store.read_config(spec)["clip"]).max_logit_scale
    return float(min(math.exp(log_scale), limit))


def student_tokenizer(spec: str, captions: Sequence[str], context_length: int = 32) -> tuple[ClipTokenizer, list[str]]:
    """(tokenizer, seed labels): a bootstrap teacher's own; else a BPE trained on ``captions``."""
    if not spec.startswith(("hf:", "open_clip:")) and store.is_model_dir(spec):
        data = store.read_config(spec)
        length = ClipConfig.from_dict(data["clip"]).context_length
        return ClipTokenizer.load(Path(spec) / store.TOKENIZER, length), list(data.get("labels", []))
    bpe = train_tokenizer(list(captions) + seed_corpus([]), TokenizerConfig(context_length=context_length))
    return ClipTokenizer(bpe, context_length), []


def _encode_png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def make_view(pairs: Sequence[tuple[bytes, str]], view: int, seed: int) -> list[tuple[bytes, str]]:
    """View ``view`` of ``pairs`` as (image bytes, caption), one entry per pair: view 0 the pairs
    themselves, the others an augmentation of each (deterministic given ``seed``)."""
    if view == 0:
        return list(pairs)
    out = []
    for i, (data, caption) in enumerate(pairs):
        rng = random.Random(f"{seed}:view:{view}:{i}")
        image = decode_image(data, VIEW_SIDE)
        image = augment(image, rng, min(VIEW_SIDE, *image.size), VIEW_AUGMENT)
        if rng.random() < VIEW_TURN:
            image = image.transpose(rng.choice((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                                Image.Transpose.ROTATE_270)))
        if rng.random() < VIEW_CHANNELS:
            bands = list(image.split())
            rng.shuffle(bands)
            image = Image.merge("RGB", bands)
        out.append((_encode_png(image), perturb_caption(caption, "", rng, WEB_CAPTION_STYLE)))
    return out


def _pixels(images: Sequence[bytes], size: int) -> torch.Tensor:
    """Images as the student's scorer sees them, uint8 (n, 3, size, size)."""
    arr = np.stack([np.asarray(center_crop(decode_image(b, 2 * size), size), dtype=np.uint8) for b in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def _normalize(pixels: torch.Tensor, cfg: ClipConfig) -> torch.Tensor:
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def distill_loss(s_img: torch.Tensor, s_txt: torch.Tensor, t_img: torch.Tensor, t_txt: torch.Tensor,
                 scale: float, kl_weight: float = 1.0, l1_weight: float = 1.0) -> tuple[torch.Tensor, float, float]:
    """(loss, KL, L1) for one batch of normalized student and teacher embeddings."""
    t_logits = scale * t_img @ t_txt.t()
    s_logits = scale * s_img @ s_txt.t()
    kl = (F.kl_div(F.log_softmax(s_logits, dim=1), F.log_softmax(t_logits, dim=1), log_target=True,
                   reduction="batchmean")
          + F.kl_div(F.log_softmax(s_logits.t(), dim=1), F.log_softmax(t_logits.t(), dim=1), log_target=True,
                     reduction="batchmean")) / 2
    l1 = ((s_img - t_img).abs().sum(dim=1).mean() + (s_txt - t_txt).abs().sum(dim=1).mean()) / 2
    return kl_weight * kl + l1_weight * l1, float(kl.detach()), float(l1.detach())


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [b for b in np.array_split(order, range(batch_size, n, batch_size)) if len(b) >= 2]


def distill(teacher, teacher_spec: str, pairs: Sequence[tuple[bytes, str]], output,
            shape: StudentShape = StudentShape(), config: DistillConfig = DistillConfig()) -> tuple[Clip, DistillSummary]:
    """Train a student of ``shape`` to match ``teacher`` (a loaded ``ClipScorer`` for
    ``teacher_spec``) on ``pairs`` (image bytes, caption); save it as a bootstrap model
    folder at ``output`` (plus ``distill.json`` and ``train_log.jsonl``)."""
    output = Path(output)
    device = resolve_device(config.device)
    good = []
    for data, caption in pairs:  # undecodable images are left out, as training on pairs does
        try:
            decode_image(data, 8)
        except ValueError:
            continue
        good.append((data, caption))
    if len(good) < 2:
        raise ValueError(f"need at least 2 readable pairs to distill on, got {len(good)}")
    tokenizer, labels = student_tokenizer(teacher_spec, [c for _, c in good])
    cfg = shape.clip_config(teacher.dim, tokenizer.vocab_size, tokenizer.context_length)
    scale = config.teacher_scale or teacher_scale(teacher_spec)

    t0 = time.perf_counter()
    t_img, t_txt, pixels, ids_all, lengths_all = [], [], [], [], []
    for v in range(config.views):  # one view at a time: only its embeddings, pixels and tokens are kept
        view = make_view(good, v, config.seed)
        t_img.append(torch.from_numpy(teacher.embed_images([b for b, _ in view])))
        t_txt.append(torch.from_numpy(teacher.embed_texts([c for _, c in view])))
        pixels.append(_pixels([b for b, _ in view], cfg.image_size))
        ids, lengths = tokenizer([c for _, c in view])
        ids_all.append(ids)
        lengths_all.append(lengths)
    t_img, t_txt, pixels = torch.stack(t_img), torch.stack(t_txt), torch.stack(pixels)
    ids_all, lengths_all = torch.stack(ids_all), torch.stack(lengths_all)
    teacher_seconds = time.perf_counter() - t0
    _say(config, f"[{PHASE}] {len(good)} pairs x {config.views} views scored by the teacher (and prepared) in "
                 f"{teacher_seconds:.1f}s (dim {teacher.dim}, logit scale {scale:.1f})")

    torch.manual_seed(config.seed)
    student = Clip(cfg)
    with torch.no_grad():
        student.logit_scale.fill_(math.log(scale))
    student.logit_scale.requires_grad_(False)
    student.to(device).train()
    train = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        weight_decay=config.weight_decay, seed=config.seed, device=config.device, progress=False)
    optimizer = _optimizer(student, train)
    n = len(good)
    steps = len(_batches(n, config.batch_size, config.seed, 0)) * config.epochs
    scheduler = _schedule(optimizer, train, steps)
    output.mkdir(parents=True, exist_ok=True)
    (output / store.LOG).unlink(missing_ok=True)
    (output / store.CHECKPOINT).unlink(missing_ok=True)  # not a training checkpoint of this model
    train_seconds, loss_value, kl_value, l1_value = 0.0, float("nan"), float("nan"), float("nan")
    for epoch in range(config.epochs):
        which = torch.from_numpy(np.random.default_rng([config.seed, epoch, 1]).integers(0, config.views, n))
        t1 = time.perf_counter()
        losses, kls, l1s = [], [], []
        for idx in _batches(n, config.batch_size, config.seed, epoch):
            idx = torch.from_numpy(idx)
            v = which[idx]
            images = _normalize(pixels[v, idx].to(device), cfg)
            ids, lengths = ids_all[v, idx].to(device), lengths_all[v, idx].to(device)
            s_img, s_txt, _ = student(images, ids, lengths)
            loss, kl, l1 = distill_loss(s_img, s_txt, t_img[v, idx].to(device), t_txt[v, idx].to(device), scale,
                                        config.kl_weight, config.l1_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), train.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            kls.append(kl)
            l1s.append(l1)
        seconds = time.perf_counter() - t1
        train_seconds += seconds
        loss_value, kl_value, l1_value = float(np.mean(losses)), float(np.mean(kls)), float(np.mean(l1s))
        store.append_log(output, {"phase": PHASE, "epoch": epoch + 1, "epochs": config.epochs,
                                  "loss": round(loss_value, 5), "kl": round(kl_value, 5), "l1": round(l1_value, 5),
                                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3),
                                  "images_per_s": round(n / seconds, 1), "device": device})
        _say(config, f"[{PHASE}] epoch {epoch + 1}/{config.epochs} loss {loss_value:.4f} (KL {kl_value:.4f}, "
                     f"L1 {l1_value:.4f}) {n / seconds:.0f} img/s {seconds:.1f}s")
    student.eval()
    store.save_model(output, student.cpu(), tokenizer, labels)
    summary = DistillSummary(n, config.views, scale, round(teacher_seconds, 3), round(train_seconds, 3),
                             loss_value, kl_value, l1_value)
    atomic_write_text(output / INFO, json.dumps({
        "teacher": teacher_spec, "teacher_dim": teacher.dim, "student": asdict(shape),
        "options": {k: v for k, v in asdict(replace(config, teacher_scale=scale)).items() if k != "progress"},
        "summary": asdict(summary)}, indent=2) + "\n")
    return student, summary
