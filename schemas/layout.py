"""The output layout, as paths relative to OUT (the contract other tools rely on; see the README).

Rejects are key-range shards per stage, ``rejects/STAGE/NNNNN.parquet``; outputs of earlier
versions had one ``rejects/STAGE.parquet`` per stage, and readers accept both.
"""
from __future__ import annotations

SHARDS = "shards"
REJECTS = "rejects"
SHARD_TABLES = (SHARDS, "*.parquet")
REJECT_TABLES = ((REJECTS, "*", "*.parquet"), (REJECTS, "*.parquet"))  # this layout, then the older one
