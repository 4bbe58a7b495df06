"""Textness: a probe on image embeddings tells pictures with words from pictures without;
a negative bias moves the caption away from images that only show the word."""
from __future__ import annotations

import numpy as np
import pytest

from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.clip.data import Sample
from clipcurate.pipeline.clip.model import ClipConfig
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.textness import TextnessProbe, train_probe
from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap

LABELS = ["circle", "square", "star"]
SMALL = ClipConfig(image_size=32, patch_size=8, vision_width=48, vision_layers=1, vision_heads=2,
                   text_width=48, text_layers=1, text_heads=2, context_length=16, embed_dim=48)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    rng = np.random.default_rng(0)
    samples = [Sample(image=synth.make_image(label, rng, 32), group=i, label=label)
               for i, label in enumerate(LABELS) for _ in range(32)]  # 16: probe accuracy 0.53-0.77 by seed
    folder = tmp_path_factory.mktemp("model")
    train_bootstrap(folder, (samples, LABELS), SMALL, TrainConfig(epochs=40, batch_size=16, progress=False, device="cpu"))
    return ClipScorer.load(ScorerConfig(spec=str(folder), device="cpu"))


def test_probe_separates_pictures_with_words(scorer, tmp_path):
    probe, accuracy = train_probe(scorer, n=200, size=64)
    assert accuracy >= 0.65  # held-out rendered pictures, chance 0.5 (a tiny 3-label model; larger ones do better)
    path = tmp_path / "textness.json"
    probe.save(str(path))
    again = TextnessProbe.load(str(path))
    rng = np.random.default_rng(5)
    words = scorer.embed_images([synth.encode_jpeg(synth.make_text_image(label, rng, 64)) for label in LABELS * 10])
    pictures = scorer.embed_images([synth.encode_jpeg(synth.make_image(label, rng, 64)) for label in LABELS * 10])
    np.testing.assert_allclose(again.score(words), probe.score(words), rtol=1e-6)  # the saved probe is the same probe
    assert again.score(words).mean() > 0.5 > again.score(pictures).mean()


def test_negative_bias_takes_similarity_away_from_the_word_picture(scorer):
    probe, _ = train_probe(scorer, n=200, size=64)
    rng = np.random.default_rng(6)
    words = scorer.embed_images([synth.encode_jpeg(synth.make_text_image("star", rng, 64)) for _ in range(10)])
    pictures = scorer.embed_images([synth.encode_jpeg(synth.make_image("star", rng, 64)) for _ in range(10)])
    text = scorer.embed_texts(["star"])

    def advantage(t):  # how much more the word pictures match the caption than real stars do, on average
        return float((words @ t[0]).mean() - (pictures @ t[0]).mean())

    # what selection compares is the word pictures' similarity against the real pictures':
    # a negative bias takes the word pictures' advantage away, a positive one adds to it
    assert advantage(probe.bias_texts(text, -0.5)) < advantage(text) < advantage(probe.bias_texts(text, +0.5))
