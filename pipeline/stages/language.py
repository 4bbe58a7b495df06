"""The language stage: every pair gets ``language`` and ``language_score``; unwanted ones are dropped."""
from __future__ import annotations

import apache_beam as beam

from clipcurate.filters.language import LanguageConfig, LanguageFilter, LanguageIdentifier
from clipcurate.filters.prompts import clean_label, is_label_like
from clipcurate.pipeline.stages.base import BatchCheckDoFn, split


class _Identify:
    def __init__(self, config: LanguageConfig):
        self.identifier = LanguageIdentifier()
        self.filter = LanguageFilter(config)

    def __call__(self, rows):
        # a bare label ("golden_retriever") is identified as the words it stands for
        texts = [r.get("caption") or "" for r in rows]
        found = self.identifier.detect_batch([clean_label(t) if is_label_like(t) else t for t in texts])
        out = []
        for row, (lang, score) in zip(rows, found):
            row = dict(row, language=lang, language_score=float(score))
            out.append((row, self.filter.check(row)))
        return out


class IdentifyLanguage(beam.PTransform):
    def __init__(self, config: LanguageConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config
        batches = rows | "Batch" >> beam.BatchElements(min_batch_size=64, max_batch_size=2048)
        return split(batches, "Identify", BatchCheckDoFn("language", lambda: _Identify(config)))
