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
