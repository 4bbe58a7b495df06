"""The output layout, as paths relative to OUT (the contract other tools rely on; see the README).

A metadata-only run (``run --until STAGE``) writes ``pairs/NNNNN.parquet`` instead of shards.
Rejects are key-range shards per stage, ``rejects/STAGE/NNNNN.parquet``; outputs of earlier
versions had one ``rejects/STAGE.parquet`` per stage, and readers accept both.
"""
from __future__ import annotations

SHARDS = "shards"
REJECTS = "rejects"
PAIRS = "pairs"  # a metadata-only run's (--until) surviving rows, instead of shards
SHARD_TABLES = (SHARDS, "*.parquet")
PAIR_TABLES = (PAIRS, "*.parquet")
REJECT_TABLES = ((REJECTS, "*", "*.parquet"), (REJECTS, "*.parquet"))  # this layout, then the older one
