"""The prompts stage: label-only captions become sentence prompts; the original goes to ``raw_caption``."""
from __future__ import annotations

import apache_beam as beam

from clipcurate.filters.prompts import PromptConfig, PromptRewriter
from clipcurate.pipeline.stages.base import RowCheckDoFn, split


class MakePrompts(beam.PTransform):
    def __init__(self, config: PromptConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        config = self.config

        def make():
            rewriter = PromptRewriter(config)
            return lambda row: (rewriter.rewrite(row), None)

        return split(rows, "Rewrite", RowCheckDoFn("prompts", make))
