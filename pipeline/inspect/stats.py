"""stats.json: counts per stage and reason, read back from what was written, plus timings and options."""
from __future__ import annotations

import glob
import json
import os

import pyarrow.parquet as pq

from clipcurate.pipeline.files import atomic_write

from clipcurate.schemas.reasons import FUNNEL


def reject_counts(out: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(glob.glob(os.path.join(out, "rejects", "*.parquet"))):
        table = pq.read_table(path, columns=["stage", "reason"])
        for stage, reason in zip(table.column("stage").to_pylist(), table.column("reason").to_pylist()):
            stage = stage or "internal"
            counts.setdefault(stage, {})
            counts[stage][reason] = counts[stage].get(reason, 0) + 1
    return counts


def kept_count(out: str) -> int:
    path = os.path.join(out, "shards", "sizes.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(sum(json.load(f).values()))


def build_stats(out: str, run_info: dict, options: dict, selection: dict | None = None) -> dict:
    counts = reject_counts(out)
    kept = kept_count(out)
    rejected = sum(sum(r.values()) for r in counts.values())
    input_rows = run_info.get("input_rows")
    if input_rows is None:
        input_rows = kept + rejected
    stages = [{"stage": s, "rejected": sum(counts[s].values()), "reasons": dict(sorted(counts[s].items()))}
              for s in FUNNEL if s in counts]
    stages += [{"stage": s, "rejected": sum(r.values()), "reasons": r} for s, r in counts.items() if s not in FUNNEL]
    funnel, remaining = [], input_rows
    for entry in stages:
        funnel.append({"stage": entry["stage"], "rows_in": remaining, "rows_out": remaining - entry["rejected"]})
        remaining -= entry["rejected"]
    return {
        "input_rows": input_rows,
        "kept": kept,
        "rejected": rejected,
        "accounted_for": kept + rejected == input_rows,
        "stages": stages,
        "funnel": funnel,
        "timings": {"total_s": run_info.get("total_s"), "stages": run_info.get("stages", {})},
        "options": options,
        "selection": selection,
    }


def write_stats(out: str, stats: dict) -> str:
    path = os.path.join(out, "stats.json")
    atomic_write(path, json.dumps(stats, indent=1, sort_keys=False, default=str).encode())
    return path
