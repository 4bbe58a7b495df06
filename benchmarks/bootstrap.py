"""Benchmark: train the bootstrap CLIP on 1,000 synthetic shape images, then evaluate it.

Prints wall time, images/s and time per epoch; zero-shot accuracy (prompt
ensemble) on held-out images; and accuracy/AUC with held-out web-style
captions unlike the training prompts. With --round, also a bootstrapping
round on web pairs (web-style captions) and the same figures after it.

    .venv/bin/python benchmarks/bootstrap.py [--threads 2] [--epochs N] [--seed S] [--round]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.clip.evaluate import caption_eval, zero_shot
from clipcurate.pipeline.clip.model import ClipConfig
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.train import RoundConfig, TrainConfig, finetune_on_pairs, train_bootstrap
from clipcurate.pipeline.sources.seeds import training_samples


def held_out(labels, per_label: int, seed: int, size: int):
    images, names = [], []
    for i, label in enumerate(labels):
        rng = np.random.default_rng([seed, 1000 + i])
        for _ in range(per_label):
            images.append(synth.encode_jpeg(synth.make_image(label, rng, size), quality=int(rng.integers(40, 95))))
            names.append(label)
    return images, names


def web_pairs(labels, n: int, seed: int, size: int):
    """Matched web pairs: a shape image with a web-style caption of its own label."""
    rng = np.random.default_rng([seed, 7])
    pairs = []
    for _ in range(n):
        label = labels[int(rng.integers(len(labels)))]
        image, info = synth.make_sample(label, rng, size)
        pairs.append((synth.encode_jpeg(image, quality=int(rng.integers(40, 95))), synth.make_web_caption(label, rng, info["color"])))
    return pairs


def report(model_dir, labels, images, names, tag: str) -> dict:
    scorer = ClipScorer.load(ScorerConfig(spec=str(model_dir)))
    zs = zero_shot(scorer, images, names, labels)
    web = caption_eval(scorer, images, names, labels, synth.make_web_caption, seed=3)
    print(f"{tag}: zero-shot accuracy {zs.accuracy:.3f} | web-style captions: accuracy {web.accuracy:.3f} "
          f"AUC {web.auc:.3f} (matched {web.matched_mean:.3f} vs mismatched {web.mismatched_mean:.3f})")
    print(f"{tag}: per label " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(zs.per_label.items(), key=lambda kv: kv[1])))
    return {"zero_shot": zs.accuracy, "web_caption_accuracy": web.accuracy, "web_caption_auc": web.auc}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--per-label", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="training seed (the data are the same for every seed)")
    ap.add_argument("--round", action="store_true", help="also run a bootstrapping round on web-style pairs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels = list(synth.LABELS[:10])
    size = 64
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir, model_dir = Path(tmp) / "seed", Path(tmp) / "model"
        synth.write_image_folder(seed_dir, labels, per_label=args.per_label, seed=0, size=size)
        images, names = held_out(labels, 50, seed=1, size=size)
        config = TrainConfig(epochs=args.epochs, seed=args.seed)
        model_config = ClipConfig()  # 64-px images in, the model's own input size (default 32)
        samples = training_samples(seed_dir, model_config.image_size)
        t0 = time.perf_counter()
        _, summary = train_bootstrap(model_dir, samples, model_config, config)
        wall = time.perf_counter() - t0
        print(f"train (seed {args.seed}): {len(samples[0])} images x {args.epochs} epochs on {args.threads} threads: "
              f"wall {wall:.1f}s, {summary.images_per_s:.0f} images/s, {wall / args.epochs:.2f}s per epoch")
        results = {"wall_s": wall, "images_per_s": summary.images_per_s, "epochs": args.epochs, "seed": args.seed,
                   "seed_model": report(model_dir, labels, images, names, "seed model")}
        if args.round:
            pairs = web_pairs(labels, 500, seed=2, size=size)
            t0 = time.perf_counter()
            finetune_on_pairs(model_dir, pairs, RoundConfig(), seed_samples=samples[0])
            print(f"round: {len(pairs)} web pairs + seed, wall {time.perf_counter() - t0:.1f}s")
            results["round"] = report(model_dir, labels, images, names, "after round")
        print(json.dumps(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
