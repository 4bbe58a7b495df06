"""Which keys a record (a plain dict) has after which stage: the one place this is written down.

A record enters with the source's fields and the user's columns, and each
stage adds the fields listed for it (``prompts`` may also rewrite
``caption``). A stage reads only fields that an earlier entry adds. A record
that is dropped leaves the flow as a reject row: the fields it had, without
``INTERNAL_KEYS``, plus ``REJECT_FIELDS``. Readers of a mixed stream of rows
and rejects never look for a key to tell them apart: sources yield
``("batch" | "malformed", item)`` pairs and stages emit rejects on their own
tagged output.
"""
from __future__ import annotations

# (stage, fields it adds), in flow order; optional stages in brackets in the comments
ADDED_BY = (
    ("ingest", ("url", "caption", "source_file", "source_row")),        # + every user column
    ("crawl/warc", ("page_url", "caption_source", "page_language")),     # only rows from pages (page_language: if declared)
    ("labelled", ("label", "raw_caption", "local_path", "invalid_path")),  # only labelled rows
    ("normalize", ("key",)),
    ("language", ("language", "language_score")),
    ("prompts", ("raw_caption", "label")),                               # only bare-label captions
    ("download", ("image", "sha256", "md5", "width", "height", "original_width", "original_height")),
    ("near_dedup", ("phash",)),                                          # [on by default]
    ("score", ("similarity", "image_embedding", "text_embedding", "textness")),  # [--clip]
)

REJECT_FIELDS = ("stage", "reason", "error_message", "thumbnail")


def fields_after(stage: str) -> frozenset[str]:
    """Every field a record may have once ``stage`` has run (user columns aside)."""
    names = [s for s, _ in ADDED_BY]
    if stage not in names:
        raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(names)}")
    out: set[str] = set()
    for s, fields in ADDED_BY[: names.index(stage) + 1]:
        out.update(fields)
    return frozenset(out)


def input_order(row: dict):
    """A record's place in the input (file, row, then key): the order rejects and dedup keep to."""
    return order_of(row.get("source_file"), row.get("source_row"), row.get("key"))


def order_of(source_file, source_row, key):
    """``input_order`` of a record with these three fields."""
    return (source_file or "", source_row if source_row is not None else -1, key or "")


def where(row: dict) -> str:
    """Where a record came from, for messages: ``FILE:ROW``."""
    return place_of(row.get("source_file"), row.get("source_row"))


def place_of(source_file, source_row) -> str:
    """``where`` of a record with these two fields."""
    return f"{source_file}:{source_row}"
