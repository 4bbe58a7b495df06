"""``clipcurate textness MODEL``: train a model's textness probe once and save it beside the model.

``clipcurate bootstrap`` does this for the models it trains; for a pretrained model (``hf:DIR``,
``open_clip:ARCH:WEIGHTS``) run it once before ``run --clip MODEL`` uses ``--max-textness`` or
``--textness-bias``. A run reads the saved probe on its workers and never trains one.
"""
from __future__ import annotations

import sys

from clipcurate.pipeline.cli import UsageError


def add_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="bootstrap model folder, open_clip:ARCH:/path/weights.pt or hf:/path/to/clip_dir")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="where to save the probe (default: MODEL_DIR/textness.json, or WEIGHTS.textness.json)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def main(args) -> int:
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
    from clipcurate.pipeline.clip.textness import default_probe_path, train_and_save

    path = args.output or default_probe_path(args.model)
    if not path:
        raise UsageError(f"cannot tell where to save the probe of {args.model!r}: give --output FILE")
    try:
        scorer = ClipScorer.load(ScorerConfig(spec=args.model, device=args.device))
    except Exception as err:  # noqa: BLE001 - a model that cannot load is a one-line error
        raise UsageError(f"cannot load {args.model!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    try:
        _, accuracy = train_and_save(scorer, path)
    except OSError as err:
        raise UsageError(f"cannot write {path!r}: {err.strerror or err}") from None
    print(f"textness probe written to {path} (held-out accuracy {accuracy:.3f})", file=sys.stderr)
    return 0
