"""The bootstrap CLIP's model, tokenizer, training loop, checkpoints and scorer (CPU, tiny)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.clip import store
from clipcurate.pipeline.clip.data import Sample, augment, read_shard_pairs
from clipcurate.pipeline.clip.model import Clip, ClipConfig, contrastive_loss
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.text import ClipTokenizer, perturb_caption, sample_prompt, seed_corpus, train_tokenizer
from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap

TINY = ClipConfig(image_size=32, patch_size=8, vision_width=32, vision_layers=1, vision_heads=2,
                  text_width=32, text_layers=1, text_heads=2, context_length=16, embed_dim=32)
LABELS = ["circle", "square", "star"]


def tiny_samples(per_label=6, seed=0):
    rng = np.random.default_rng(seed)
    return [Sample(image=synth.make_image(label, rng, 32), group=i, label=label)
            for i, label in enumerate(LABELS) for _ in range(per_label)], LABELS


def quiet(**kw) -> TrainConfig:
    return TrainConfig(progress=False, device="cpu", **kw)


def test_forward_shapes_and_normalized_embeddings():
    tok = ClipTokenizer(train_tokenizer(seed_corpus(LABELS)), TINY.context_length)
    model = Clip(TINY.__class__(**{**TINY.to_dict(), "vocab_size": tok.vocab_size})).eval()
    images = torch.randn(5, 3, 32, 32)
    ids, lengths = tok(["a photo of a star.", "star", "", "x " * 40, "orange star icon for a website"])
    assert ids.shape == (5, 16) and lengths.max() <= 16
    img, txt, scale = model(images, ids, lengths)
    assert img.shape == (5, 32) and txt.shape == (5, 32)
    assert torch.allclose(img.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(txt.norm(dim=1), torch.ones(5), atol=1e-5)
    assert 0 < float(scale.detach()) <= TINY.max_logit_scale


def test_logit_scale_is_clamped():
    model = Clip(TINY)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert float(model.scale().detach()) == pytest.approx(100.0)


def test_loss_decreases_on_a_tiny_set(tmp_path):
    samples, labels = tiny_samples()
    train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=25, batch_size=18, lr=2e-3))
    losses = [r["loss"] for r in map(eval_json, (tmp_path / store.LOG).read_text().splitlines())]
    assert len(losses) == 25
    assert min(losses[-3:]) < losses[0] - 0.2


def eval_json(line):
    import json
    return json.loads(line)


def test_save_load_round_trip_gives_identical_embeddings(tmp_path):
    samples, labels = tiny_samples(per_label=2)
    model, _ = train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=1, batch_size=6))
    for name in (store.WEIGHTS, store.CONFIG, store.TOKENIZER, store.LOG, store.CHECKPOINT):
        assert (tmp_path / name).is_file()
    loaded, tok, saved_labels = store.load_model(tmp_path)
    assert saved_labels == LABELS
    tok2 = ClipTokenizer.load(tmp_path / store.TOKENIZER, TINY.context_length)
    text = ["a red star icon", "a photo of a circle."]
    assert torch.equal(tok(text)[0], tok2(text)[0])
    model.eval()
    images = torch.randn(3, 3, 32, 32)
    ids, lengths = tok(text)
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), loaded.encode_image(images))
        assert torch.equal(model.encode_text(ids, lengths), loaded.encode_text(ids, lengths))


def test_same_seed_gives_identical_weights(tmp_path):
    samples, labels = tiny_samples(per_label=3)
    for name in ("a", "b"):
        train_bootstrap(tmp_path / name, (samples, labels), TINY, quiet(epochs=2, batch_size=4, seed=7))
    a, b = load_file(str(tmp_path / "a" / store.WEIGHTS)), load_file(str(tmp_path / "b" / store.WEIGHTS))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    train_bootstrap(tmp_path / "c", (samples, labels), TINY, quiet(epochs=2, batch_size=4, seed=8))
    c = load_file(str(tmp_path / "c" / store.WEIGHTS))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    samples, labels = tiny_samples(per_label=3)
    full = quiet(epochs=3, batch_size=4, seed=1)
    train_bootstrap(tmp_path / "full", (samples, labels), TINY, full)

    class Interrupt(Exception):
        pass

    # interrupt the second run right after its first epoch's checkpoint
    real_save = store.save_checkpoint

    def save_then_stop(model_dir, state):
        real_save(model_dir, state)
        raise Interrupt

    store.save_checkpoint = save_then_stop  # stands in for a kill after the first epoch
    try:
        with pytest.raises(Interrupt):
            train_bootstrap(tmp_path / "cut", (samples, labels), TINY, full)
    finally:
        store.save_checkpoint = real_save
    assert store.load_checkpoint(tmp_path / "cut")["epoch"] == 1
    train_bootstrap(tmp_path / "cut", (samples, labels), TINY, full)  # same command again
    a, b = load_file(str(tmp_path / "full" / store.WEIGHTS)), load_file(str(tmp_path / "cut" / store.WEIGHTS))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    epochs = [eval_json(line)["epoch"] for line in (tmp_path / "cut" / store.LOG).read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_resume_refuses_other_options(tmp_path):
    samples, labels = tiny_samples(per_label=2)
    train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=1, batch_size=6))
    store.save_checkpoint(tmp_path, {**store.load_checkpoint(tmp_path), "done": []})
    with pytest.raises(ValueError, match="other training options"):
        train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=1, batch_size=6, lr=5e-4))


class _RunsCode:
    """What a tampered checkpoint holds: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_tampered_checkpoint_is_refused_without_running_code(tmp_path):
    samples, labels = tiny_samples(per_label=2)
    train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=1, batch_size=6))
    marker = tmp_path / "code-ran"
    torch.save({**store.load_checkpoint(tmp_path), "extra": _RunsCode(marker)}, tmp_path / store.CHECKPOINT)
    with pytest.raises(ValueError, match="not a training checkpoint we wrote"):
        train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=1, batch_size=6))
    assert not marker.exists()


def test_contrastive_loss_counts_same_group_as_positive():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    swapped = txt[[1, 0, 2, 3]]  # texts 0 and 1 trade places: same group, so the same loss
    groups = torch.tensor([0, 0, 1, 2])
    scale = torch.tensor(10.0)
    assert torch.isclose(contrastive_loss(img, txt, scale, groups), contrastive_loss(img, swapped, scale, groups))
    assert not torch.isclose(contrastive_loss(img, txt, scale), contrastive_loss(img, swapped, scale))


def test_prompts_keep_the_label_and_vary():
    rng = random.Random(0)
    prompts = {sample_prompt("star", rng) for _ in range(200)}
    assert len(prompts) > 100
    assert all("star" in p for p in prompts)
    assert all("hexagon" in perturb_caption("a big hexagon icon", "hexagon", rng) for _ in range(50))


def test_augment_returns_the_asked_size():
    rng = random.Random(0)
    image = synth.make_image("star", np.random.default_rng(0), 80)
    assert all(augment(image, rng, 32).size == (32, 32) for _ in range(20))


def test_scorer_ranks_matched_pairs_above_mismatched_after_training(tmp_path):
    # 24 per label: with 12 the tiny model's ranking swung between 0.6 and 0.8 with the seed
    samples, labels = tiny_samples(per_label=24)
    train_bootstrap(tmp_path, (samples, labels), TINY, quiet(epochs=60, batch_size=12, lr=1e-3))
    scorer = ClipScorer.load(ScorerConfig(spec=str(tmp_path), device="cpu"))
    assert scorer.dim == 32 and scorer.device == "cpu"
    images = [synth.encode_jpeg(s.image) for s in samples]
    own = [f"a photo of a {s.label}." for s in samples]
    other = [f"a photo of a {LABELS[(LABELS.index(s.label) + 1) % 3]}." for s in samples]
    matched, mismatched = scorer.similarity(images, own), scorer.similarity(images, other)
    assert matched.shape == (len(samples),)
    assert np.mean(matched > mismatched) >= 0.8
    emb = scorer.embed_images(images[:3])
    assert emb.dtype == np.float32 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_scorer_specs_fail_with_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ClipScorer.load(ScorerConfig(spec=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="not a bootstrap CLIP folder"):
        ClipScorer.load(ScorerConfig(spec=str(tmp_path)))
    with pytest.raises(ValueError, match="does not exist"):
        ClipScorer.load(ScorerConfig(spec=f"open_clip:ViT-B-32:{tmp_path / 'w.pt'}"))
    with pytest.raises(ValueError, match="does not exist"):
        ClipScorer.load(ScorerConfig(spec=f"hf:{tmp_path / 'nope'}"))


def test_hf_spec_loads_a_saved_tiny_clip(tiny_hf_clip):
    scorer = ClipScorer.load(ScorerConfig(spec=f"hf:{tiny_hf_clip}", device="cpu"))
    image = synth.encode_jpeg(synth.make_image("star", np.random.default_rng(0), 48))
    assert scorer.dim == 16
    sims = scorer.similarity([image, image], ["a star", "a circle"])
    assert sims.shape == (2,) and np.all(np.abs(sims) <= 1.0 + 1e-5)
    assert np.allclose(np.linalg.norm(scorer.embed_texts(["a star"]), axis=1), 1.0, atol=1e-5)


def test_open_clip_spec_loads_saved_weights(tmp_path):
    open_clip = pytest.importorskip(
        "open_clip", reason="open-clip-torch imports torchvision, and the only torchvision wheels for torch 2.13 "
                            "here are CUDA builds whose operators fail to load on the CPU torch (see README)")
    model = open_clip.create_model("RN50")  # randomly initialised: nothing downloaded
    torch.save(model.state_dict(), tmp_path / "w.pt")
    scorer = ClipScorer.load(ScorerConfig(spec=f"open_clip:RN50:{tmp_path / 'w.pt'}", device="cpu"))
    image = synth.encode_jpeg(synth.make_image("star", np.random.default_rng(0), 64))
    assert scorer.embed_images([image]).shape == (1, scorer.dim)


def test_shard_pairs_are_read_in_key_order(tmp_path):
    import io
    import tarfile
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for key, caption in (("b", "second"), ("a", "first"), ("c", "")):
            for ext, data in (("jpg", synth.encode_jpeg(synth.make_image("ring", np.random.default_rng(0), 32))),
                              ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    pairs = read_shard_pairs(tmp_path)
    assert [c for _, c in pairs] == ["first", "second"]
