"""The select stage: keep the pairs whose image and caption agree.

Three rules, one threshold on cosine similarity:
- ``min_similarity``: a fixed threshold;
- ``keep_fraction``: the global (1 - F) quantile of the run's similarities (DataComp's top-k%);
- default, calibrated: the (1 - false_match_rate) quantile of the similarity of
  mismatched pairs. Mismatches are made from a deterministic sample of the run
  (the pairs with the smallest keys): every image against every other pair's
  caption, leaving out captions whose text embedding is close to the image's own
  caption (those name the same thing, so they are matches, not mismatches).
Choosing is separate from writing: rejected pairs go to rejects as
``low_similarity`` with their similarity.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stage import REJECTS


@dataclass(frozen=True)
class SelectConfig:
    min_similarity: float | None = None
    keep_fraction: float | None = None
    false_match_rate: float = 0.01
    null_sample: int = 2048            # pairs sampled for the mismatched-pair distribution
    same_concept_text_similarity: float = 0.8  # captions this close to the pair's own are left out of the null
    output_dir: str | None = None      # where selection.json is written
    max_textness: float | None = None  # images whose textness is above this are dropped: text_heavy


def null_threshold(images: np.ndarray, texts: np.ndarray, rate: float, same_text: float) -> tuple[float | None, int]:
    """(threshold, number of mismatched pairs it was computed from)."""
    n = len(images)
    if n < 2:
        return None, 0
    sims = images @ texts.T
    text_sims = texts @ texts.T
    mask = ~np.eye(n, dtype=bool) & (text_sims < same_text)
    null = sims[mask]
    if null.size < 10:
        return None, int(null.size)
    return float(np.quantile(null, 1.0 - rate)), int(null.size)


def choose_threshold(config: SelectConfig, sample: list, all_sims: list) -> dict:
    if config.min_similarity is not None:
        return {"method": "threshold", "threshold": float(config.min_similarity)}
    if config.keep_fraction is not None:
        if not all_sims:
            return {"method": "keep_fraction", "threshold": None, "keep_fraction": config.keep_fraction}
        t = float(np.quantile(np.asarray(all_sims, dtype=np.float64), 1.0 - config.keep_fraction))
        return {"method": "keep_fraction", "threshold": t, "keep_fraction": config.keep_fraction}
    sample = sorted(sample, key=lambda x: x[0])
    images = np.stack([s[1] for s in sample]).astype(np.float32) if sample else np.zeros((0, 1), np.float32)
    texts = np.stack([s[2] for s in sample]).astype(np.float32) if sample else np.zeros((0, 1), np.float32)
    t, n_null = null_threshold(images, texts, config.false_match_rate, config.same_concept_text_similarity)
    return {"method": "null_calibrated", "threshold": t, "false_match_rate": config.false_match_rate,
            "null_pairs": n_null, "sample_pairs": len(sample),
            "note": None if t is not None else "too few pairs to calibrate: nothing dropped"}


def _publish(selection: dict, out: str | None) -> dict:
    if out:
        from clipcurate.pipeline.write import atomic_write

        atomic_write(os.path.join(out, "selection.json"), json.dumps(selection, indent=1).encode())
    return selection


class _Decide(beam.DoFn):
    def __init__(self, max_textness: float | None):
        self.max_textness = max_textness

    def process(self, row, selection):
        if self.max_textness is not None and (row.get("textness") or 0.0) > self.max_textness:
            msg = f"textness {row['textness']:.3f} > {self.max_textness}"
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, "text_heavy", msg))
            return
        t = selection.get("threshold")
        if t is None or row["similarity"] >= t:
            yield row
        else:
            msg = f"similarity {row['similarity']:.4f} < {t:.4f} ({selection['method']})"
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, "low_similarity", msg))


class Select(beam.PTransform):
    def __init__(self, config: SelectConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        sample = (rows
                  | "NullSample" >> beam.Map(lambda r: (r["key"], r["image_embedding"], r["text_embedding"]))
                  | "Smallest" >> beam.combiners.Top.Of(config.null_sample, key=lambda x: x[0], reverse=True))
        if config.keep_fraction is not None:
            sims = (rows | "Sims" >> beam.Map(lambda r: r["similarity"])
                    | "AllSims" >> beam.combiners.ToList())
        else:
            sims = rows.pipeline | "NoSims" >> beam.Create([[]])
        selection = (
            rows.pipeline
            | "One" >> beam.Create([None])
            | "Threshold" >> beam.Map(lambda _, s, a: _publish(choose_threshold(config, s[0] if s else [], a), config.output_dir),
                                      beam.pvalue.AsList(sample), beam.pvalue.AsSingleton(sims))
        )
        result = rows | "Decide" >> beam.ParDo(_Decide(config.max_textness), beam.pvalue.AsSingleton(selection)).with_outputs(REJECTS, main="main")
        return result.main, result[REJECTS]
