"""The language stage: every pair gets ``language`` and ``language_score``; rows surely in a language
not asked for are dropped, doubtful ones kept and counted (metric ``language_uncertain``)."""
from __future__ import annotations

from typing import Optional

from clipcurate.filters.language import LanguageConfig, LanguageFilter, LanguageIdentifier, row_hints
from clipcurate.filters.prompts import clean_label, is_label_like
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.stages.captions import CaptionStep

UNCERTAIN_NAME = "_language_uncertain.json"  # beside the outputs; read and removed by the launcher


class _Identify:
    def __init__(self, config: LanguageConfig):
        self.config = config
        self.identifier = LanguageIdentifier(config)
        self.filter = LanguageFilter(config)
        self.use_hints = config.page_prior > 0 or config.url_prior > 0

    def __call__(self, rows):
        # a bare label ("golden_retriever") is identified as the words it stands for
        texts = [r.get("caption") or "" for r in rows]
        hints = [row_hints(r, self.config) for r in rows] if self.use_hints else None
        guesses = self.identifier.guess_batch([clean_label(t) if is_label_like(t) else t for t in texts], hints)
        shares = self.filter.wanted_share(guesses).tolist()
        clues = self.filter.word_clues(guesses)  # words that move a caption's drop threshold
        out = []
        for row, lang, score, share, clue in zip(rows, guesses.langs, guesses.scores, shares, clues):
            row = dict(row, language=lang, language_score=float(score))
            out.append((row, self.filter.check(row, share, clue)))
        return out


def write_uncertain(total: int, out: str) -> str:
    return fs.write_run_count(out, UNCERTAIN_NAME, "language_uncertain", total)


def read_uncertain_count(out: str) -> Optional[int]:
    """The kept-uncertain count a run wrote (None when it wrote none); the file is removed either way."""
    return fs.take_run_count(out, UNCERTAIN_NAME, "language_uncertain")


def identify_language(config: LanguageConfig) -> CaptionStep:
    """A caption step (``captions``): every row gets ``language`` and ``language_score``; with languages
    asked for, rows surely in another are dropped and the rows kept on doubt (best guess not among
    them: ``LanguageFilter.uncertain``) are counted (``write_uncertain``)."""
    count = LanguageFilter(config).uncertain if config.languages is not None else None
    return CaptionStep("Language", "language", lambda: _Identify(config), count=count)
