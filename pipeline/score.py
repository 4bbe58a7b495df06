"""The CLIP scoring stage: image and text embeddings and their cosine similarity, batched.

The model loads once per worker (``setup``); batches come from
``BatchElements``; the GPU is used when present (see ``clip.scorer``).
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from clipcurate.filters.base import Drop
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.stage import BatchCheckDoFn, split


@dataclass(frozen=True)
class ScoreConfig:
    scorer: ScorerConfig
    max_batch: int = 256


class _Scorer:
    def __init__(self, config: ScoreConfig):
        self.model = ClipScorer.load(config.scorer)

    def __call__(self, rows):
        try:
            images = self.model.embed_images([r["image"] for r in rows])
            texts = self.model.embed_texts([r["caption"] for r in rows])
        except (ValueError, OSError) as err:
            if len(rows) > 1:
                raise  # the adapter retries one by one
            return [(rows[0], Drop("scoring_error", f"{type(err).__name__}: {err}"))]
        sims = np.sum(images * texts, axis=1)
        return [(dict(r, similarity=float(s), image_embedding=i, text_embedding=t), None)
                for r, s, i, t in zip(rows, sims, images, texts)]


class Score(beam.PTransform):
    def __init__(self, config: ScoreConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        batches = rows | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=config.max_batch)
        return split(batches, "Embed", BatchCheckDoFn("clip", lambda: _Scorer(config)))
