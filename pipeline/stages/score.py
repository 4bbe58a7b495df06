"""The CLIP scoring stage: image and text embeddings and their cosine similarity, batched.

The model loads once per worker process (``setup``, shared through ``Shared``); batches come from
``BatchElements``; the GPU is used when present (see ``clip.scorer``).
"""
from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from apache_beam.utils.shared import Shared

from clipcurate.filters.base import Drop
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.textness import TextnessProbe
from clipcurate.pipeline.stages.base import BatchCheckDoFn, split


@dataclass(frozen=True)
class ScoreConfig:
    scorer: ScorerConfig
    max_batch: int = 256
    textness_probe: str | None = None  # path of a textness.json probe: every sample gets ``textness``
    textness_bias: float = 0.0         # added times the probe's direction to text embeddings before scoring


class _Scorer:
    def __init__(self, config: ScoreConfig, shared: Shared):
        # one model per worker process, whatever the number of DoFn instances or bundles
        self.model = shared.acquire(lambda: _Loaded(ClipScorer.load(config.scorer)), tag=config.scorer).scorer
        self.probe = TextnessProbe.load(config.textness_probe) if config.textness_probe else None
        self.bias = config.textness_bias

    def __call__(self, rows):
        try:
            images = self.model.embed_images([r["image"] for r in rows])
            texts = self.model.embed_texts([r["caption"] for r in rows])
        except (ValueError, OSError) as err:
            if len(rows) > 1:
                raise  # the adapter retries one by one
            return [(rows[0], Drop("scoring_error", f"{type(err).__name__}: {err}"))]
        textness = [None] * len(rows)
        scored = texts
        if self.probe is not None:
            textness = [float(x) for x in self.probe.score(images)]
            scored = self.probe.bias_texts(texts, self.bias)  # the bias moves the score, not the stored embedding
        sims = np.sum(images * scored, axis=1)
        return [(dict(r, similarity=float(s), textness=x, image_embedding=i, text_embedding=t), None)
                for r, s, x, i, t in zip(rows, sims, textness, images, texts)]


class _Loaded:
    """A weak-referenceable holder for the model (what ``Shared`` keeps per process)."""

    def __init__(self, scorer: ClipScorer):
        self.scorer = scorer


class Score(beam.PTransform):
    """Rows with an image -> rows with similarity, embeddings and textness; the model is loaded on the
    workers (once per process, through ``apache_beam.utils.shared.Shared``), never on the launcher."""

    def __init__(self, config: ScoreConfig):
        super().__init__()
        self.config = config
        self.shared = Shared()

    def expand(self, rows):
        config, shared = self.config, self.shared
        batches = rows | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=config.max_batch)
        return split(batches, "Embed", BatchCheckDoFn("clip", lambda: _Scorer(config, shared)))
