"""The prompts step: label-only captions become sentence prompts; the original goes to ``raw_caption``."""
from __future__ import annotations

from clipcurate.filters.prompts import PromptConfig, PromptRewriter
from clipcurate.pipeline.stages.captions import CaptionStep, per_row


def make_prompts(config: PromptConfig) -> CaptionStep:
    """A caption step (``captions``): rewrites rows, drops none."""
    def make():
        rewriter = PromptRewriter(config)
        return lambda row: (rewriter.rewrite(row), None)

    return CaptionStep("Prompts", "prompts", per_row(make))
