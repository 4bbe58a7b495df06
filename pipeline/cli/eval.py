"""``clipcurate eval MODEL --labelled DIR``: zero-shot top-1 accuracy with a prompt ensemble."""
from __future__ import annotations

import json

from clipcurate.pipeline.cli import UsageError


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="bootstrap model folder, open_clip:ARCH:/path/weights.pt or hf:/path/to/clip_dir")
    parser.add_argument("--labelled", required=True, metavar="DIR", help="labelled ImageFolder or table")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def main(args) -> int:
    from clipcurate.pipeline.clip.evaluate import evaluate_images
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
    from clipcurate.pipeline.sources.labelled import labelled_images

    try:
        scorer = ClipScorer.load(ScorerConfig(spec=args.model, device=args.device, batch_size=args.batch_size))
        result = evaluate_images(scorer, labelled_images(args.labelled))
    except ValueError as err:  # InputError (the labelled source) is a ValueError too
        raise UsageError(str(err)) from None
    if args.json:
        print(json.dumps({"model": scorer.name, **result.to_dict()}, indent=2))
        return 0
    print(f"zero-shot accuracy: {result.accuracy:.4f} ({result.n} images, {len(result.counts)} labels, {scorer.name})")
    width = max(len(label) for label in result.counts)
    for label, count in result.counts.items():
        acc = result.per_label.get(label)
        print(f"  {label.ljust(width)}  {'n/a' if acc is None else f'{acc:.4f}'}  ({count})")
    return 0
