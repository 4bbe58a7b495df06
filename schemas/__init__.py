"""Arrow schemas of the pipeline's records, and the fixed set of reason codes.

A pair moves through the pipeline as a dict whose reserved fields are named in
``SAMPLE_FIELDS``; every other key is a user column carried from the input.
Which fields exist after which stage is written down in ``schemas.records``.
A dropped pair becomes a reject row: its input columns plus ``stage``,
``reason`` and ``error_message`` (and whatever reserved fields were known when
it was dropped).
"""
from __future__ import annotations

import pyarrow as pa

from clipcurate.schemas.reasons import FUNNEL, REASONS, Reason  # noqa: F401

# The pair as it enters the pipeline, after ingest (user columns are added).
INPUT_FIELDS = [
    pa.field("url", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_row", pa.int64()),
]
INPUT_SCHEMA = pa.schema(INPUT_FIELDS)

# A kept sample's metadata: one row per sample in a shard's Parquet file and
# the sample's KEY.json in the tar.
SAMPLE_FIELDS = [
    pa.field("key", pa.string()),
    pa.field("url", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("raw_caption", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_row", pa.int64()),
    pa.field("page_url", pa.string()),
    pa.field("label", pa.string()),
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float32()),
    pa.field("sha256", pa.string()),
    pa.field("md5", pa.string()),
    pa.field("phash", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("similarity", pa.float32()),
    pa.field("textness", pa.float32()),
]
SAMPLE_SCHEMA = pa.schema(SAMPLE_FIELDS)

# Extra fields of a reject row.
REJECT_EXTRA_FIELDS = [
    pa.field("stage", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("thumbnail", pa.binary()),
]
REJECT_SCHEMA = pa.schema(SAMPLE_FIELDS + REJECT_EXTRA_FIELDS)

# Internal keys that travel with a record but are never written as columns.
INTERNAL_KEYS = frozenset({"image", "local_path", "invalid_path", "image_embedding", "text_embedding"})

RESERVED_NAMES = frozenset(f.name for f in REJECT_SCHEMA) | INTERNAL_KEYS | {"shard"}

CLASH_PREFIX = "src_"


# reserved fields an input column of the same name fills (a crawl's table read back, a labelled table)
PASS_THROUGH = frozenset({"page_url", "label", "raw_caption"})


def column_clashes(columns, url_col: str = "url", caption_col: str = "caption") -> list[str]:
    """User columns whose names are reserved (the url/caption columns and pass-through fields excepted)."""
    return [c for c in columns if c in RESERVED_NAMES and c not in (url_col, caption_col) and c not in PASS_THROUGH]


def carried_name(column: str) -> str:
    """The name a clashing user column is carried under."""
    return CLASH_PREFIX + column


def user_fields(input_schema: pa.Schema, url_col: str, caption_col: str) -> list[pa.Field]:
    """The user columns that are carried through, renamed where they clash."""
    out = []
    clashes = set(column_clashes(input_schema.names, url_col, caption_col))
    for f in input_schema:
        if f.name in (url_col, caption_col) or f.name in PASS_THROUGH:
            continue
        name = carried_name(f.name) if f.name in clashes else f.name
        out.append(pa.field(name, f.type))
    return out


def sample_schema(extra: list[pa.Field]) -> pa.Schema:
    return pa.schema(SAMPLE_FIELDS + list(extra))


def reject_schema(extra: list[pa.Field]) -> pa.Schema:
    return pa.schema(SAMPLE_FIELDS + REJECT_EXTRA_FIELDS + list(extra))
