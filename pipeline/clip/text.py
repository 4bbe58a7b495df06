"""Text for the bootstrap CLIP: a BPE tokenizer and varied training prompts.

The text tower must key on the label word in captions richer than the label
prompts, so training prompts mix templates, colour and adjective words,
web context phrases ("icon", "for a website"), random made-up words and word
dropout. The tokenizer is byte-level, so no caption is ever out of vocabulary.
"""
from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from clipcurate.pipeline.files import atomic_path

from clipcurate.filters.prompts import ENSEMBLE_TEMPLATES, make_prompt

PAD, SOT, EOT = "<pad>", "<sot>", "<eot>"

COLOR_WORDS = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
    "white", "gray", "grey", "teal", "cyan", "magenta", "gold", "silver", "navy",
)
ADJECTIVES = (
    "big", "small", "tiny", "large", "cute", "simple", "flat", "bold", "bright", "dark",
    "shiny", "hand-drawn", "colorful", "plain", "modern", "retro", "round", "thin", "thick", "glossy",
)
CONTEXT_PHRASES = (
    "icon", "clipart", "logo", "for a website", "on white background", "illustration",
    "image", "picture", "shape", "art", "on a {color} background", "in {color}", "free", "hd",
)
# Everyday alt-text words: only for the tokenizer's merges, not for prompts.
TOKENIZER_WORDS = """
the a an of and with for on in at to from by is are this that it its my our your new best top free
photo image picture drawing painting sketch render illustration graphic art vector icon logo clipart
sticker emoji symbol sign badge banner poster card print design element pattern texture background
wallpaper template frame border doodle cartoon style stock download png jpg svg transparent hd high
quality resolution size color colour light dark bright shape shaped simple flat minimal modern vintage
retro cute funny beautiful pretty big small large tiny little round square line lines outline filled
solid kids children school class home office shop store buy sale online website web page blog post
shirt mug wall decal paper craft gift toy game app button object set collection pack group pair one two
three several many isolated centered view close up left right top bottom corner middle side front back
""".split()


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 4096
    context_length: int = 32


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig = TokenizerConfig()) -> Tokenizer:
    """A lowercased byte-level BPE trained on ``texts`` plus the context vocabulary."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size, min_frequency=1, special_tokens=[PAD, SOT, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    vocab = list(TOKENIZER_WORDS) + list(COLOR_WORDS) + list(ADJECTIVES) + list(CONTEXT_PHRASES)
    tok.train_from_iterator([*texts, *vocab, " ".join(vocab)], trainer=trainer)
    return tok


def seed_corpus(labels: Sequence[str]) -> list[str]:
    """Every ensemble template filled with every label."""
    return [make_prompt(label, template) for label in labels for template in ENSEMBLE_TEMPLATES]


class ClipTokenizer:
    """Fixed-length token ids: <sot> tokens <eot>, then padding."""

    def __init__(self, tokenizer: Tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.pad_id = tokenizer.token_to_id(PAD)
        self.sot_id = tokenizer.token_to_id(SOT)
        self.eot_id = tokenizer.token_to_id(EOT)
        if None in (self.pad_id, self.sot_id, self.eot_id):
            raise ValueError("tokenizer lacks the <pad>, <sot>, <eot> special tokens")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (n, context_length) int64, lengths (n,) up to and including <eot>)."""
        ids = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)
        lengths = torch.empty(len(texts), dtype=torch.long)
        for row, enc in enumerate(self.tokenizer.encode_batch([t or "" for t in texts], add_special_tokens=False)):
            body = enc.ids[: self.context_length - 2]
            seq = [self.sot_id, *body, self.eot_id]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            lengths[row] = len(seq)
        return ids, lengths

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            self.tokenizer.save(tmp)

    @classmethod
    def load(cls, path, context_length: int) -> "ClipTokenizer":
        return cls(Tokenizer.from_file(str(path)), context_length)


@dataclass(frozen=True)
class PromptStyle:
    """Probabilities of each kind of variation in a training prompt."""

    color: float = 0.4
    adjective: float = 0.25
    context: float = 0.4
    bare: float = 0.15          # "orange star icon": no template at all
    made_up_word: float = 0.25  # a random letter string somewhere, to be ignored
    word_dropout: float = 0.1


def _made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))


def _context(rng: random.Random) -> str:
    return rng.choice(CONTEXT_PHRASES).format(color=rng.choice(COLOR_WORDS))


def sample_prompt(label: str, rng: random.Random, style: PromptStyle = PromptStyle()) -> str:
    """A varied caption naming ``label``, e.g. "a drawing of a cute red star. icon"."""
    phrase = label
    if rng.random() < style.adjective:
        phrase = f"{rng.choice(ADJECTIVES)} {phrase}"
    if rng.random() < style.color:
        phrase = f"{rng.choice(COLOR_WORDS)} {phrase}"
    if rng.random() < style.bare:
        text = phrase
    else:
        text = make_prompt(phrase, rng.choice(ENSEMBLE_TEMPLATES))
    if rng.random() < style.context:
        text = f"{text.rstrip('.')}{rng.choice((' ', ', ', ' - '))}{_context(rng)}"
    return perturb_caption(text, label, rng, style)


def perturb_caption(text: str, label: str, rng: random.Random, style: PromptStyle = PromptStyle()) -> str:
    """Word dropout and made-up word insertion that never touch the label's words."""
    keep = set(label.lower().split())
    words = [w for w in text.split() if w.strip(".,!?-").lower() in keep or rng.random() >= style.word_dropout]
    if rng.random() < style.made_up_word:
        words.insert(rng.randint(0, len(words)), _made_up_word(rng))
    return " ".join(words) or label
