"""stats.json: counts per stage and reason, read back from what was written (Arrow group-bys over the
rejects' two columns, file by file), plus timings and options."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from clipcurate.pipeline import files as fs
from clipcurate.schemas.layout import PAIR_TABLES, REJECT_TABLES, SHARD_TABLES


def kept_files(out: str) -> list[str]:
    """The kept samples' Parquet files: the shards', or a metadata-only run's pairs."""
    return fs.match(fs.join(out, *SHARD_TABLES)) or fs.match(fs.join(out, *PAIR_TABLES))


def reject_files(out: str) -> list[str]:
    """Every rejects file of an output (this layout's rejects/STAGE/NNNNN.parquet, or an older one's)."""
    return sorted(p for parts in REJECT_TABLES for p in fs.match(fs.join(out, *parts)))
from clipcurate.schemas.reasons import FUNNEL


def reject_counts(out: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for path in reject_files(out):
        with fs.open_read(path) as f:
            table = pq.read_table(f, columns=["stage", "reason"])
        table = table.set_column(0, "stage", table.column("stage").fill_null("internal"))
        grouped = table.group_by(["stage", "reason"]).aggregate([([], "count_all")])
        for stage, reason, n in zip(*(grouped.column(c).to_pylist() for c in ("stage", "reason", "count_all"))):
            counts.setdefault(stage, {})
            counts[stage][reason] = counts[stage].get(reason, 0) + int(n)
    return counts


def kept_count(out: str) -> int:
    """Samples in the shards (sizes.json), or rows in a metadata-only run's pairs (Parquet footers)."""
    path = fs.join(out, "shards", "sizes.json")
    if fs.exists(path):
        return int(sum(json.loads(fs.read_bytes(path)).values()))
    total = 0
    for table in fs.match(fs.join(out, *PAIR_TABLES)):
        with fs.open_read(table) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def build_stats(out: str, run_info: dict, options: dict, selection: dict | None = None) -> dict:
    counts = reject_counts(out)
    kept = kept_count(out)
    rejected = sum(sum(r.values()) for r in counts.values())
    input_rows = run_info.get("input_rows")  # counted by the pipeline from its sources; None: unknown
    stages = [{"stage": s, "rejected": sum(counts[s].values()), "reasons": dict(sorted(counts[s].items()))}
              for s in FUNNEL if s in counts]
    stages += [{"stage": s, "rejected": sum(r.values()), "reasons": dict(sorted(r.items()))}
               for s, r in sorted(counts.items()) if s not in FUNNEL]
    if "language_uncertain" in run_info:  # kept by the language stage although its best guess was not asked for
        entry = next((e for e in stages if e["stage"] == "language"), None)
        if entry is not None:
            entry["kept_uncertain"] = run_info["language_uncertain"]
    funnel, remaining = [], input_rows if input_rows is not None else kept + rejected
    for entry in stages:
        funnel.append({"stage": entry["stage"], "rows_in": remaining, "rows_out": remaining - entry["rejected"]})
        remaining -= entry["rejected"]
    return {
        "input_rows": input_rows,
        "kept": kept,
        "rejected": rejected,
        "accounted_for": None if input_rows is None else kept + rejected == input_rows,
        "stages": stages,
        "funnel": funnel,
        **({"language": {"kept_uncertain": run_info["language_uncertain"]}} if "language_uncertain" in run_info else {}),
        "timings": {"total_s": run_info.get("total_s"), "stages": run_info.get("stages", {})},
        "options": options,
        "selection": selection,
    }


def write_stats(out: str, stats: dict) -> str:
    path = fs.join(out, "stats.json")
    fs.atomic_write(path, json.dumps(stats, indent=1, sort_keys=False, default=str).encode())
    return path
