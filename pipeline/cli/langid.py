"""``clipcurate langid``: the language of captions read one per line on stdin.

Prints ``lang<TAB>score<TAB>caption`` per input line, ``und`` where a caption
has no language. Imports neither Beam nor torch, so it starts in a blink.
"""
from __future__ import annotations

import itertools
import os
import sys
from typing import BinaryIO, Iterator, TextIO


def add_arguments(parser) -> None:
    parser.add_argument("--batch-size", type=int, default=4096,
                        help="captions scored together (default 4096)")
    parser.add_argument("--min-letters", type=int, default=3,
                        help="letters needed to name a language; fewer gives und (default 3)")


def main(args) -> int:
    from clipcurate.filters.language import LanguageConfig, LanguageIdentifier
    from clipcurate.pipeline.cli.errors import UsageError

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.min_letters < 1:
        raise UsageError("--min-letters must be at least 1")
    identifier = LanguageIdentifier(LanguageConfig(min_letters=args.min_letters))
    out = open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False, buffering=1 << 16)
    try:
        label_stream(identifier, sys.stdin.buffer, out, args.batch_size)
        out.flush()
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def label_stream(identifier, source: BinaryIO, sink: TextIO, batch_size: int) -> None:
    """Write ``lang<TAB>score<TAB>caption`` for every line of ``source``."""
    for lines in _chunks(source, batch_size):
        captions = [line.decode("utf-8", errors="replace").rstrip("\r\n") for line in lines]
        results = identifier.detect_batch(captions)
        sink.write("".join(f"{lang}\t{score:.3f}\t{caption}\n"
                           for (lang, score), caption in zip(results, captions)))


def _chunks(source: BinaryIO, size: int) -> Iterator[list[bytes]]:
    lines = iter(source)
    while chunk := list(itertools.islice(lines, size)):
        yield chunk
