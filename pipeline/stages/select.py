"""The select stage: keep the pairs whose image and caption agree.

Three rules:
- ``min_similarity``: a fixed threshold on cosine similarity;
- ``keep_fraction``: the global (1 - F) quantile of the run's similarities (DataComp's top-k%);
- default, calibrated against mismatched pairs, per image: each image is scored
  against reference captions (the captions of a deterministic sample of the run,
  the pairs with the smallest keys), leaving out references whose text
  embedding is close to the image's own caption (those name the same thing:
  matches, not mismatches). The image's threshold is the (1 - false_match_rate)
  quantile of those mismatched similarities: its own caption must beat all but
  that fraction of the captions that are not about it. A wrong caption is just
  another caption that is not about the image, so about ``false_match_rate`` of
  mismatched pairs pass. One global null would not do: when the web has few
  concepts, an image with a wrong caption meets many random captions that do
  describe it, and those true matches would inflate a global null's tail.
Choosing is separate from writing: rejected pairs go to rejects as
``low_similarity`` with their similarity and threshold, and the rule goes out
as one record (Select's third output) that the selection.json sink writes.
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stages.base import REJECTS


@dataclass(frozen=True)
class SelectConfig:
    min_similarity: float | None = None
    keep_fraction: float | None = None
    false_match_rate: float = 0.01
    null_sample: int = 2048            # reference captions for the mismatched-pair calibration
    same_concept_text_similarity: float = 0.8  # references this close to the pair's own caption are left out
    min_references: int = 20           # fewer usable references: the pair is kept (too little to judge)
    max_textness: float | None = None  # images whose textness is above this are dropped: text_heavy


def image_threshold(image: np.ndarray, text: np.ndarray, references: np.ndarray, rate: float,
                    same_text: float, min_references: int) -> float | None:
    """The (1 - rate) quantile of the image's similarity with the references not about its own caption."""
    if len(references) == 0:
        return None
    usable = references[references @ text < same_text]
    if len(usable) < min_references:
        return None
    return float(np.quantile(usable @ image, 1.0 - rate))


QUANTILES = 1001  # similarity quantiles kept by the combiner for --keep-fraction (0.1% steps)
THRESHOLD_QUANTILES = 21  # per-image threshold quantiles for selection.json (5% steps)


def quantile(values: list, q: float):
    """The q-quantile from ``ApproximateQuantiles``' evenly spaced list (min .. max)."""
    return float(values[round(q * (len(values) - 1))]) if values else None


def choose_rule(config: SelectConfig, sample: list, sim_quantiles: list) -> dict:
    """The rule and what it needs: a global threshold, or the reference captions."""
    if config.min_similarity is not None:
        return {"method": "threshold", "threshold": float(config.min_similarity)}
    if config.keep_fraction is not None:
        return {"method": "keep_fraction", "threshold": quantile(sim_quantiles, 1.0 - config.keep_fraction),
                "keep_fraction": config.keep_fraction}
    sample = sorted(sample, key=lambda x: x[0])
    return {"method": "null_calibrated", "threshold": None, "false_match_rate": config.false_match_rate,
            "reference_captions": len(sample),
            "references": np.stack([np.asarray(s[1], np.float32) for s in sample]) if sample else np.zeros((0, 1), np.float32)}


def selection_record(rule: dict, quantiles: list, uncalibrated: int) -> dict:
    """What selection.json says about the rule: its method and threshold(s), without the references;
    for the per-image rule, quantiles of the per-image thresholds (from a combiner, never a list of all)."""
    record = {k: v for k, v in rule.items() if k != "references"}
    if rule["method"] == "null_calibrated":
        record["threshold"] = quantile(quantiles, 0.5)  # a typical per-image threshold
        record["threshold_quantiles"] = ({q: quantile(quantiles, float(q)) for q in ("0.05", "0.5", "0.95")}
                                         if quantiles else None)
        record["uncalibrated_pairs"] = int(uncalibrated)
    return record


class _Decide(beam.DoFn):
    def __init__(self, config: SelectConfig):
        self.config = config

    def process(self, row, rule):
        c = self.config
        if c.max_textness is not None and (row.get("textness") or 0.0) > c.max_textness:
            msg = f"textness {row['textness']:.3f} > {c.max_textness}"
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, "text_heavy", msg))
            return
        if rule["method"] == "null_calibrated":
            image, text = np.asarray(row["image_embedding"], np.float32), np.asarray(row["text_embedding"], np.float32)
            t = image_threshold(image, text, rule["references"], c.false_match_rate, c.same_concept_text_similarity,
                                c.min_references)
            if t is not None:  # on the similarity's scale: a textness bias moves the pair and its threshold alike
                t += row["similarity"] - float(image @ text)
        else:
            t = rule.get("threshold")
        yield beam.pvalue.TaggedOutput("thresholds", t)
        if t is None or row["similarity"] >= t:
            yield row
        else:
            msg = f"similarity {row['similarity']:.4f} < {t:.4f} ({rule['method']})"
            yield beam.pvalue.TaggedOutput(REJECTS, reject_row(row, "low_similarity", msg))


class Select(beam.PTransform):
    """Scored rows -> (kept, rejects, rule record): the record is what selection.json says."""

    def __init__(self, config: SelectConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        sample = (rows
                  | "Sample" >> beam.Map(lambda r: (r["key"], r["text_embedding"]))
                  | "Smallest" >> beam.combiners.Top.Of(config.null_sample, key=lambda x: x[0], reverse=True))
        if config.keep_fraction is not None:
            sims = (rows | "Sims" >> beam.Map(lambda r: r["similarity"])
                    | "SimQuantiles" >> beam.ApproximateQuantiles.Globally(QUANTILES))
        else:
            sims = rows.pipeline | "NoSims" >> beam.Create([[]])
        rule = (
            rows.pipeline
            | "One" >> beam.Create([None])
            | "Rule" >> beam.Map(lambda _, s, a: choose_rule(config, s[0] if s else [], a),
                                 beam.pvalue.AsList(sample), beam.pvalue.AsSingleton(sims))
        )
        result = rows | "Decide" >> beam.ParDo(_Decide(config), beam.pvalue.AsSingleton(rule)).with_outputs(
            REJECTS, "thresholds", main="main")
        # one small record for the selection.json sink (flow.py writes it)
        known = result.thresholds | "Known" >> beam.Filter(lambda t: t is not None)
        quantiles = known | "ThresholdQuantiles" >> beam.ApproximateQuantiles.Globally(THRESHOLD_QUANTILES)
        uncalibrated = (result.thresholds | "Unknown" >> beam.Filter(lambda t: t is None)
                        | "CountUnknown" >> beam.combiners.Count.Globally())
        record = (quantiles
                  | "Record" >> beam.Map(lambda qs, r, n: selection_record(r, qs, n), beam.pvalue.AsSingleton(rule),
                                         beam.pvalue.AsSingleton(uncalibrated)))
        return result.main, result[REJECTS], record
