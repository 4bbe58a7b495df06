"""``clipcurate bootstrap SEED --output MODEL_DIR``: train a small CLIP from a labelled seed set.

SEED is an ImageFolder (or labelled table) whose labels become prompts, or
curated WebDataset shards from an earlier run. ``--bootstrap-round SHARDS``
then fine-tunes on the confidently matched web pairs in SHARDS (their real
captions) mixed with the seed prompts. Rerunning the same command resumes.
"""
from __future__ import annotations

import sys
from pathlib import Path

from clipcurate.pipeline.cli import UsageError


def add_arguments(parser) -> None:
    from clipcurate.pipeline.clip.model import ClipConfig
    from clipcurate.pipeline.clip.train import TrainConfig

    defaults, model_defaults = TrainConfig(), ClipConfig()
    parser.add_argument("source", metavar="SEED_DIR_OR_SHARDS",
                        help="labelled ImageFolder (or table), or a folder of curated .tar shards")
    parser.add_argument("--output", "-o", required=True, metavar="MODEL_DIR", help="folder for the model")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--image-size", type=int, default=model_defaults.image_size,
                        help="the model's input resolution (images are resized to it)")
    parser.add_argument("--vision-layers", type=int, default=model_defaults.vision_layers,
                        help="transformer blocks in the image tower (default %(default)s)")
    parser.add_argument("--text-layers", type=int, default=model_defaults.text_layers,
                        help="transformer blocks in the text tower (default %(default)s)")
    parser.add_argument("--resume", action="store_true", default=True,
                        help="continue from MODEL_DIR/checkpoint.pt if present (default)")
    parser.add_argument("--no-resume", dest="resume", action="store_false", help="start over")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--bootstrap-round", metavar="SHARDS", action="append", default=[],
                        help="after seed training, fine-tune on the pairs in these shards (repeatable)")
    parser.add_argument("--round-epochs", type=int, default=10)
    parser.add_argument("--round-lr", type=float, default=3e-4)
    parser.add_argument("--round-top", type=float, default=1.0, metavar="FRACTION",
                        help="use only this best-scored fraction of the round's pairs (default 1: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args) -> int:
    import torch

    from clipcurate.pipeline.clip.data import read_shard_pairs, shard_files
    from clipcurate.pipeline.clip.model import ClipConfig
    from clipcurate.pipeline.clip.train import (
        RoundConfig, TrainConfig, finetune_on_pairs, train_bootstrap,
    )
    from clipcurate.pipeline.sources.seeds import training_samples

    if not Path(args.source).exists():
        raise UsageError(f"seed source {args.source} does not exist")
    for shards in args.bootstrap_round:
        if not shard_files(shards):
            raise UsageError(f"--bootstrap-round {shards}: no .tar shards there")
    try:
        model_config = ClipConfig(image_size=args.image_size, vision_layers=args.vision_layers,
                                  text_layers=args.text_layers)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             device=args.device, progress=not args.quiet)
        round_config = RoundConfig(
            TrainConfig(epochs=args.round_epochs, batch_size=args.batch_size, lr=args.round_lr, seed=args.seed,
                        device=args.device, progress=not args.quiet), top_fraction=args.round_top)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        samples = training_samples(args.source, model_config.image_size)
        _, summary = train_bootstrap(args.output, samples, model_config, config, resume=args.resume)
        seed_samples = samples[0] if samples[1] else []
        for shards in args.bootstrap_round:
            finetune_on_pairs(args.output, read_shard_pairs(shards), round_config, seed_samples=seed_samples,
                              phase=f"round:{Path(shards).resolve()}")
        from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
        from clipcurate.pipeline.clip.textness import default_probe_path, train_and_save

        # the textness probe, trained once here so that runs only read it
        train_and_save(ClipScorer.load(ScorerConfig(spec=str(args.output), device=args.device)),
                       default_probe_path(str(args.output)))
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"model written to {args.output}", file=sys.stderr)
    return 0
