"""``clipcurate distill TEACHER --data OUT/shards --output STUDENT_DIR``: a small, fast student scorer.

TEACHER is any ``--clip`` spec (a bootstrap folder, ``hf:DIR``, ``open_clip:ARCH:WEIGHTS``); the
student (fewer, narrower layers, a smaller input) learns to match its in-batch similarity
distributions (KL, image -> text and text -> image) and its embeddings (L1) on the pairs of
WebDataset shards, and is written as a bootstrap model folder, with its textness probe, so
``clipcurate run --clip STUDENT_DIR`` scores with it. See ``pipeline/clip/distill.py``.
"""
from __future__ import annotations

import sys
import tarfile
from pathlib import Path

from clipcurate.pipeline.cli import UsageError


def add_arguments(parser) -> None:
    from clipcurate.pipeline.clip.distill import DistillConfig, StudentShape

    d, s = DistillConfig(), StudentShape()
    parser.add_argument("teacher", metavar="TEACHER",
                        help="bootstrap model folder, open_clip:ARCH:/path/weights.pt or hf:/path/to/clip_dir")
    parser.add_argument("--data", required=True, metavar="SHARDS",
                        help="WebDataset .tar shards: a run's output folder, its shards/ folder, or one .tar")
    parser.add_argument("--output", "-o", required=True, metavar="STUDENT_DIR", help="folder for the student model")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--image-size", type=int, default=s.image_size, help="the student's input resolution")
    parser.add_argument("--patch-size", type=int, default=s.patch_size, help="the student's patch size (a power of 2)")
    parser.add_argument("--width", type=int, default=s.width, help="the width of both student towers")
    parser.add_argument("--layers", type=int, default=s.layers, help="transformer blocks in each student tower")
    parser.add_argument("--views", type=int, default=d.views,
                        help="teacher-scored views per pair, computed once (1: the pairs as they are; more: also "
                             "augmented copies, each scored by the teacher)")
    parser.add_argument("--teacher-scale", type=float, default=None, metavar="S",
                        help="logit scale of the in-batch softmaxes (default: a bootstrap teacher's own, else 100)")
    parser.add_argument("--kl-weight", type=float, default=d.kl_weight)
    parser.add_argument("--l1-weight", type=float, default=d.l1_weight)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args) -> int:
    import torch

    from clipcurate.pipeline.clip.data import read_shard_pairs, shard_files
    from clipcurate.pipeline.clip.distill import DistillConfig, StudentShape, distill
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
    from clipcurate.pipeline.clip.textness import default_probe_path, train_and_save

    try:  # every option checked before anything is loaded
        shape = StudentShape(image_size=args.image_size, patch_size=args.patch_size, width=args.width,
                             layers=args.layers)
        shape.clip_config(embed_dim=8, vocab_size=8, context_length=8)  # the architecture's own checks
        config = DistillConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, views=args.views,
                               kl_weight=args.kl_weight, l1_weight=args.l1_weight, teacher_scale=args.teacher_scale,
                               seed=args.seed, device=args.device, progress=not args.quiet)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not Path(args.data).exists():
        raise UsageError(f"--data {args.data} does not exist")
    if not shard_files(args.data):
        raise UsageError(f"--data {args.data}: no .tar shards there")
    if Path(args.output).exists() and not Path(args.output).is_dir():
        raise UsageError(f"--output {args.output} is a file, not a folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        teacher = ClipScorer.load(ScorerConfig(spec=args.teacher, device=args.device))
    except ValueError as err:
        raise UsageError(f"cannot load the teacher: {err}") from None
    pairs = []
    for shard in shard_files(args.data):
        try:
            pairs += read_shard_pairs(shard)
        except (OSError, EOFError, tarfile.TarError) as err:
            raise UsageError(f"cannot read the shard {shard}: {str(err).splitlines()[0].rstrip(':')}") from None
    try:
        _, summary = distill(teacher, args.teacher, pairs, args.output, shape, config)
        # the textness probe, trained once here (as bootstrap does) so that runs only read it
        train_and_save(ClipScorer.load(ScorerConfig(spec=str(args.output), device=args.device)),
                       default_probe_path(str(args.output)))
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(f"student written to {args.output} ({summary.pairs} pairs, {config.epochs} epochs, "
          f"final KL {summary.kl:.4f}, L1 {summary.l1:.4f})", file=sys.stderr)
    return 0
