"""Training the bootstrap CLIP: from a seed set, then bootstrapping rounds on web pairs.

Training runs in named phases ("seed", then one per bootstrapping round).
After every epoch a checkpoint (model, optimizer, scheduler, epoch, RNG,
finished phases) is written atomically; running the same training again
continues from it, and skips phases already finished.
"""
from __future__ import annotations

import math
import random
import shutil
import sys
import time
import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from clipcurate.pipeline.clip import store
from clipcurate.pipeline.clip.data import (
    AugmentConfig, Sample, augment, augment_batch, pair_samples, to_tensor,
)
from clipcurate.pipeline.clip.model import Clip, ClipConfig, contrastive_loss
from clipcurate.pipeline.clip.text import (
    ClipTokenizer, PromptStyle, TokenizerConfig, perturb_caption, sample_prompt, seed_corpus, train_tokenizer,
)

SEED_PHASE = "seed"
WEB_CAPTION_STYLE = PromptStyle(word_dropout=0.05, made_up_word=0.1)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 90
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"          # auto | cpu | cuda
    prompt: PromptStyle = field(default_factory=PromptStyle)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = True          # one line per epoch on stderr

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("epochs must be >= 1, batch size >= 2 and learning rate > 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")

    def identity(self) -> dict:
        """What must match for a checkpoint to be continued (not the device or progress)."""
        data = asdict(self)
        data.pop("device")
        data.pop("progress")
        return data


@dataclass(frozen=True)
class RoundConfig:
    """A bootstrapping round: fine-tune on confidently matched web pairs plus the seed prompts."""

    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=3e-4))
    top_fraction: float = 1.0      # keep this best-scored fraction of the pairs (by the current model)

    def __post_init__(self):
        if not 0 < self.top_fraction <= 1:
            raise ValueError("top fraction must be in (0, 1]")


@dataclass(frozen=True)
class PhaseSummary:
    phase: str
    epochs_run: int
    seconds: float
    images_per_s: float
    loss: float


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return device


def _say(config: TrainConfig, message: str) -> None:
    if config.progress:
        print(message, file=sys.stderr, flush=True)


def _optimizer(model: Clip, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on gains, biases and the temperature (parameters under 2-D)."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-6)


def _schedule(optimizer, config: TrainConfig, total_steps: int):
    warmup = max(1, round(config.warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(n: int, config: TrainConfig, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([config.seed, epoch]).permutation(n)
    return [b for b in np.array_split(order, range(config.batch_size, n, config.batch_size)) if len(b) >= 2]


def _texts_and_images(samples: Sequence[Sample], idx, config: TrainConfig, phase: str, epoch: int, size: int):
    images, texts = [], []
    for i in idx:
        rng = random.Random(f"{config.seed}:{phase}:{epoch}:{int(i)}")
        s = samples[int(i)]
        images.append(augment(s.image, rng, size, config.augment))
        texts.append(sample_prompt(s.label, rng, config.prompt) if s.label is not None
                     else perturb_caption(s.caption, "", rng, WEB_CAPTION_STYLE))
    return images, texts


def run_phase(model: Clip, tokenizer: ClipTokenizer, samples: Sequence[Sample], config: TrainConfig,
              model_dir, phase: str, checkpoint: Optional[dict]) -> PhaseSummary:
    """Train ``model`` in place for one phase, checkpointing every epoch."""
    done = list(checkpoint.get("done", [])) if checkpoint else []
    if checkpoint:
        model.load_state_dict(checkpoint["model"])  # the latest weights, whichever phase wrote them
    if phase in done:
        _say(config, f"[{phase}] already finished in {model_dir}; skipping")
        return PhaseSummary(phase, 0, 0.0, 0.0, float("nan"))
    device = resolve_device(config.device)
    model.to(device).train()
    n_batches = len(_batches(len(samples), config, 0))
    if n_batches == 0:
        raise ValueError(f"need at least 2 training pairs, got {len(samples)}")
    optimizer = _optimizer(model, config)
    scheduler = _schedule(optimizer, config, n_batches * config.epochs)
    start = 0
    if checkpoint and checkpoint.get("phase") == phase:
        if checkpoint.get("train") != config.identity():
            raise ValueError(f"{model_dir} holds a checkpoint of phase {phase!r} made with other training "
                             "options; rerun with the same options or with --no-resume")
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        start = checkpoint["epoch"]
        store.trim_log(model_dir, phase, start)
        _say(config, f"[{phase}] resuming after epoch {start}/{config.epochs}")
    use_amp = device == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    groups_all = torch.tensor([s.group for s in samples], dtype=torch.long)
    size, cfg = model.config.image_size, model.config
    total_seconds, total_images, loss_value = 0.0, 0, float("nan")
    for epoch in range(start, config.epochs):
        generator = torch.Generator().manual_seed(zlib.crc32(f"{config.seed}:{phase}:{epoch}".encode()))
        t0 = time.perf_counter()
        losses, seen = [], 0
        for idx in _batches(len(samples), config, epoch):
            images, texts = _texts_and_images(samples, idx, config, phase, epoch, size)
            pixels = augment_batch(to_tensor(images, cfg.mean, cfg.std), generator, cfg.mean, cfg.std, config.augment)
            pixels = pixels.to(device, non_blocking=True)
            tokens, lengths = (t.to(device) for t in tokenizer(texts))
            groups = groups_all[torch.as_tensor(idx)].to(device)
            with torch.autocast("cuda", dtype=amp_dtype) if use_amp else nullcontext():
                img, txt, scale = model(pixels, tokens, lengths)
                loss = contrastive_loss(img, txt, scale, groups)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            losses.append(loss.item())
            seen += len(idx)
        seconds = time.perf_counter() - t0
        total_seconds += seconds
        total_images += seen
        loss_value = float(np.mean(losses))
        record = {"phase": phase, "epoch": epoch + 1, "epochs": config.epochs, "loss": round(loss_value, 5),
                  "lr": optimizer.param_groups[0]["lr"], "logit_scale": round(float(model.scale().detach()), 3),
                  "seconds": round(seconds, 3), "images_per_s": round(seen / seconds, 1), "device": device}
        finished = epoch + 1 == config.epochs
        store.append_log(model_dir, record)  # before the checkpoint: a resume trims lines past it
        store.save_checkpoint(model_dir, {
            "phase": phase, "epoch": epoch + 1, "done": done + [phase] if finished else done,
            "clip": cfg.to_dict(), "train": config.identity(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        })
        _say(config, f"[{phase}] epoch {epoch + 1}/{config.epochs} loss {loss_value:.4f} "
                     f"lr {record['lr']:.2e} scale {record['logit_scale']:.1f} "
                     f"{record['images_per_s']:.0f} img/s {seconds:.1f}s")
    model.eval()
    rate = total_images / total_seconds if total_seconds else 0.0
    return PhaseSummary(phase, config.epochs - start, total_seconds, rate, loss_value)


def _build_tokenizer(model_dir: Path, samples, labels, model_config: ClipConfig, reuse: bool) -> ClipTokenizer:
    path = model_dir / store.TOKENIZER
    if reuse and path.is_file():
        return ClipTokenizer.load(path, model_config.context_length)
    texts = seed_corpus(labels) + [s.caption for s in samples if s.caption]
    tok = ClipTokenizer(train_tokenizer(texts, TokenizerConfig(model_config.vocab_size, model_config.context_length)),
                        model_config.context_length)
    tok.save(path)
    return tok


def _start(model_dir: Path, resume: bool) -> Optional[dict]:
    model_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        for name in (store.CHECKPOINT, store.LOG, store.TOKENIZER, store.WEIGHTS, store.CONFIG):
            (model_dir / name).unlink(missing_ok=True)
        return None
    return store.load_checkpoint(model_dir)


def train_bootstrap(model_dir, samples: tuple[list[Sample], list[str]], model_config: ClipConfig = ClipConfig(),
                    config: TrainConfig = TrainConfig(), resume: bool = True) -> tuple[Clip, PhaseSummary]:
    """Train a CLIP from a seed set's (samples, labels) into ``model_dir``; ``sources.seeds`` reads
    them from a labelled folder/table or curated shards."""
    model_dir = Path(model_dir)
    samples, labels = samples
    checkpoint = _start(model_dir, resume)
    tokenizer = _build_tokenizer(model_dir, samples, labels, model_config, reuse=checkpoint is not None)
    model_config = replace(model_config, vocab_size=tokenizer.vocab_size)
    if checkpoint and checkpoint.get("clip") != model_config.to_dict():
        raise ValueError(f"{model_dir} holds a checkpoint of another architecture; "
                         "use the same options or --no-resume")
    torch.manual_seed(config.seed)
    model = Clip(model_config)
    summary = run_phase(model, tokenizer, samples, config, model_dir, SEED_PHASE, checkpoint)
    store.save_model(model_dir, model.cpu(), tokenizer, labels)
    return model, summary


def finetune_on_pairs(model_dir, pairs: Sequence[tuple[bytes, str]], config: RoundConfig = RoundConfig(),
                      seed_samples: Sequence[Sample] = (), phase: str = "round-1") -> tuple[Clip, PhaseSummary]:
    """A bootstrapping round: train the model in ``model_dir`` again on web pairs
    (image bytes, caption) mixed with ``seed_samples``, and save it in place.

    With ``config.top_fraction`` < 1 only the pairs the current model scores
    best are used. Resumes from the folder's checkpoint like ``train_bootstrap``.
    """
    model_dir = Path(model_dir)
    model, tokenizer, labels = store.load_model(model_dir)
    checkpoint = store.load_checkpoint(model_dir)
    pairs = list(pairs)
    if config.top_fraction < 1 and pairs:
        pairs = _most_confident(model_dir, pairs, config.top_fraction, config.train.device)
    first = 1 + max((s.group for s in seed_samples), default=-1)
    web = pair_samples(pairs, 2 * model.config.image_size, first_group=first)
    _say(config.train, f"[{phase}] {len(web)} web pairs + {len(seed_samples)} seed images")
    summary = run_phase(model, tokenizer, [*seed_samples, *web], config.train, model_dir, phase, checkpoint)
    store.save_model(model_dir, model.cpu(), tokenizer, labels)
    return model, summary


def _most_confident(model_dir, pairs, fraction: float, device: str):
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig

    scorer = ClipScorer.load(ScorerConfig(spec=str(model_dir), device=device))
    sims = scorer.similarity([p[0] for p in pairs], [p[1] for p in pairs])
    keep = max(1, round(fraction * len(pairs)))
    best = sorted(np.argsort(-sims, kind="stable")[:keep])
    return [pairs[i] for i in best]


def copy_model(src, dst) -> None:
    """Copy a model folder's model files (not its checkpoint) to another folder."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (store.TOKENIZER, store.WEIGHTS, store.CONFIG):
        shutil.copyfile(Path(src) / name, dst / name)
