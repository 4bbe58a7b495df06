"""Shared fixtures: the loopback web server (see tests/webserver.py)."""
from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, os.path.dirname(__file__))

from webserver import LoopbackServer, start_default_server  # noqa: E402


@pytest.fixture(scope="session")
def web() -> LoopbackServer:
    """One loopback server with the default routes for the whole session.

    ``web.url(path)`` for a URL, ``web.add(path, body=..., status=..., headers=...)``
    for a new route (use a path unique to your test), ``web.hit_count(path)`` for
    requests seen, ``web.other`` for a second server on another port.
    """
    server = start_default_server()
    yield server
    server.close()


TINY_EMBED_DIM = 32  # tiny_model's embedding size


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A bootstrap CLIP folder trained for seconds (2 epochs, 24 pictures), with its textness probe."""
    import numpy as np

    from clipcurate.pipeline.clip.data import Sample
    from clipcurate.pipeline.clip.model import ClipConfig
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
    from clipcurate.pipeline.clip.textness import default_probe_path, train_and_save
    from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap
    from clipcurate.pipeline.demo import synth

    tiny = ClipConfig(image_size=32, patch_size=8, vision_width=32, vision_layers=1, vision_heads=2,
                      text_width=32, text_layers=1, text_heads=2, context_length=16, embed_dim=TINY_EMBED_DIM)
    rng = np.random.default_rng(0)
    labels = ["circle", "square", "star"]
    samples = [Sample(image=synth.make_image(label, rng, 32), group=i, label=label)
               for i, label in enumerate(labels) for _ in range(8)]
    folder = str(tmp_path_factory.mktemp("tiny-model"))
    train_bootstrap(folder, (samples, labels), tiny,
                    TrainConfig(epochs=2, batch_size=8, progress=False, device="cpu"))
    train_and_save(ClipScorer.load(ScorerConfig(spec=folder, device="cpu")), default_probe_path(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_hf_clip(tmp_path_factory) -> str:
    """A randomly initialised Hugging Face CLIP (projection 16) with its own tiny BPE tokenizer, saved as a
    local folder the way ``save_pretrained`` writes one: what ``--clip hf:DIR`` loads. Nothing is downloaded."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    from clipcurate.pipeline.clip.text import seed_corpus, train_tokenizer

    folder = tmp_path_factory.mktemp("hf-clip")
    bpe = train_tokenizer(seed_corpus(["circle", "square", "star", "ring", "moon"]))
    bpe.save(str(folder / "tokenizer.json"))
    tokenizer = CLIPTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<sot>",
                                  eos_token="<eot>", pad_token="<pad>", unk_token="<pad>")
    config = CLIPConfig(
        text_config={"vocab_size": bpe.get_vocab_size(), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 16,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    import torch

    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder / "clip")
    tokenizer.save_pretrained(folder / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder / "clip")
    return str(folder / "clip")
