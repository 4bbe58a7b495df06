"""``clipcurate distill``: a student that loads as ``--clip``, agrees with its teacher far better than an
untrained student of its shape, scores a whole run, and learns from an ``hf:`` teacher too."""
from __future__ import annotations

import glob
import io
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from clipcurate.pipeline.cli import main as cli
from clipcurate.pipeline.clip import store
from clipcurate.pipeline.clip.data import decode_image
from clipcurate.pipeline.clip.distill import distill_loss, make_view
from clipcurate.pipeline.clip.model import Clip
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.textness import default_probe_path
from clipcurate.pipeline.demo import synth
from test_run import MIXED_ARGS, write_mixed_input

LABELS = ("circle", "square", "star")  # tiny_model's
# one torch thread: on a small shared machine two threads on tiny batches run ten times slower
STUDENT = ["--image-size", "16", "--patch-size", "4", "--width", "32", "--layers", "1", "--device", "cpu", "--quiet",
           "--threads", "1"]


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def web_pairs(n: int, seed: int) -> list[tuple[bytes, str]]:
    """Shape pictures with web-style captions: a third of them captioned with another shape."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        label = LABELS[i % len(LABELS)]
        image, drawn = synth.make_sample(label, rng, int(rng.integers(32, 64)))
        named = LABELS[(i + 1) % len(LABELS)] if i % 3 == 2 else label
        pairs.append((synth.encode_jpeg(image, 90), synth.make_web_caption(named, rng, drawn["color"])))
    return pairs


def write_shards(folder, pairs, per_shard: int = 40) -> None:
    """WebDataset tars KEY.jpg + KEY.txt, as a run writes them (without the metadata)."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(0, len(pairs), per_shard):
        with tarfile.open(folder / f"{s // per_shard:05d}.tar", "w") as tar:
            for i, (image, caption) in enumerate(pairs[s:s + per_shard], start=s):
                for ext, data in (("jpg", image), ("txt", caption.encode())):
                    info = tarfile.TarInfo(f"{i:09d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill-data")
    write_shards(out / "shards", web_pairs(120, seed=1))
    return out


@pytest.fixture(scope="module")
def student(tiny_model, shards, tmp_path_factory):
    folder = tmp_path_factory.mktemp("student") / "model"
    assert cli(["distill", tiny_model, "--data", str(shards), "--output", str(folder), "--epochs", "30",
                "--batch-size", "24", "--views", "2", *STUDENT]) == 0
    return str(folder)


def _sims(scorer, pairs):
    return scorer.embed_images([p[0] for p in pairs]) @ scorer.embed_texts([p[1] for p in pairs]).T


def test_distill_loss_is_zero_for_the_teacher_itself():
    torch.manual_seed(0)
    img, txt = (torch.nn.functional.normalize(torch.randn(8, 16), dim=1) for _ in range(2))
    loss, kl, l1 = distill_loss(img, txt, img, txt, 50.0)
    assert float(loss) == pytest.approx(0, abs=1e-5) and kl == pytest.approx(0, abs=1e-5) and l1 == 0
    other = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    loss, kl, l1 = distill_loss(img, other, img, txt, 50.0, kl_weight=1.0, l1_weight=0.0)
    assert kl > 0.1 and float(loss) == pytest.approx(kl)


def test_views_keep_the_pairs_first_and_are_deterministic():
    pairs = web_pairs(4, seed=2)
    assert make_view(pairs, 0, seed=0) == pairs
    one, two = make_view(pairs, 1, seed=0), make_view(pairs, 2, seed=0)
    assert make_view(pairs, 1, seed=0) == one and len(one) == len(two) == 4 and one != two
    assert all(decode_image(image, 64) for image, _ in one)


def test_student_loads_as_clip_and_agrees_with_its_teacher(student, tiny_model, tmp_path):
    for name in (store.WEIGHTS, store.CONFIG, store.TOKENIZER, "textness.json", "distill.json", store.LOG):
        assert glob.glob(f"{student}/{name}"), name
    config = store.read_config(student)
    assert config["clip"]["image_size"] == 16 and config["clip"]["vision_width"] == 32
    assert config["labels"] == list(LABELS)  # the teacher's, with its tokenizer
    info = json.load(open(f"{student}/distill.json"))
    assert info["teacher"] == tiny_model and info["summary"]["pairs"] == 120
    teacher = ClipScorer.load(ScorerConfig(spec=tiny_model, device="cpu"))
    scorer = ClipScorer.load(ScorerConfig(spec=student, device="cpu"))
    assert scorer.dim == teacher.dim  # the student's projection lives in the teacher's space
    # an untrained student of the same shape, for comparison
    model, tokenizer, labels = store.load_model(student)
    torch.manual_seed(1)
    store.save_model(tmp_path / "untrained", Clip(model.config), tokenizer, labels)
    untrained = ClipScorer.load(ScorerConfig(spec=str(tmp_path / "untrained"), device="cpu"))

    held_out = web_pairs(60, seed=9)
    t = _sims(teacher, held_out)
    s, u = _sims(scorer, held_out), _sims(untrained, held_out)
    corr_s, corr_u = np.corrcoef(t.ravel(), s.ravel())[0, 1], np.corrcoef(t.ravel(), u.ravel())[0, 1]
    top_s, top_u = np.mean(t.argmax(1) == s.argmax(1)), np.mean(t.argmax(1) == u.argmax(1))
    assert corr_s > 0.8 and corr_s > corr_u + 0.3, (corr_s, corr_u)
    assert top_s > top_u, (top_s, top_u)
    # L1 pulled the embeddings themselves toward the teacher's, so similarities are on its scale
    assert np.abs(np.diag(t) - np.diag(s)).mean() < np.abs(np.diag(t) - np.diag(u)).mean()


def test_a_run_scores_with_the_student(student, web, tmp_path_factory):
    _, src = write_mixed_input(web, tmp_path_factory.mktemp("distill-run-input"))
    out = tmp_path_factory.mktemp("distill-run") / "out"
    assert cli(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", student, "--device", "cpu",
                "--max-textness", "0.999"]) == 0
    stats = json.load(open(out / "stats.json"))
    files = sorted(glob.glob(str(out / "shards" / "*.parquet")))
    rows = pq.read_table(files).to_pylist() if files else []
    assert stats["kept"] == len(rows) > 0
    assert all(r["similarity"] is not None and r["textness"] is not None for r in rows)
    emb = np.concatenate([np.load(f[: -len(".parquet")] + ".image_embedding.npy") for f in files])
    assert emb.shape == (len(rows), 32)


def test_distill_from_an_hf_teacher(tiny_hf_clip, shards, tmp_path):
    out = tmp_path / "hf-student"
    assert cli(["distill", f"hf:{tiny_hf_clip}", "--data", str(shards / "shards"), "--output", str(out),
                "--epochs", "2", "--batch-size", "32", "--views", "1", *STUDENT]) == 0
    scorer = ClipScorer.load(ScorerConfig(spec=str(out), device="cpu"))
    assert scorer.dim == 16
    assert store.read_config(out)["labels"] == []  # its tokenizer was trained on the captions
    info = json.load(open(out / "distill.json"))
    assert info["options"]["teacher_scale"] == 100.0
    assert (out / "textness.json").is_file() and default_probe_path(str(out)) == str(out / "textness.json")


def _one_line(capsys, code, *needles):
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_input_is_one_line(tiny_model, shards, tmp_path, capsys):
    out = str(tmp_path / "s")
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(tmp_path / "nope"), "--output", out]), "does not exist")
    (tmp_path / "empty").mkdir()
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(tmp_path / "empty"), "--output", out]), "no .tar shards")
    _one_line(capsys, cli(["distill", str(tmp_path / "no-model"), "--data", str(shards), "--output", out]),
              "cannot load the teacher", "does not exist")
    _one_line(capsys, cli(["distill", "open_clip:ViT-B-32", "--data", str(shards), "--output", out]),
              "cannot load the teacher", "open_clip spec")
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(shards), "--output", out, "--layers", "0"]),
              "at least 1 transformer layer")
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(shards), "--output", out, "--image-size", "20"]),
              "multiple of patch size")
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(shards), "--output", out, "--views", "0"]), "views")
    (tmp_path / "file").write_text("x")
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(shards), "--output", str(tmp_path / "file")]),
              "is a file")
    (tmp_path / "bad" / "shards").mkdir(parents=True)
    (tmp_path / "bad" / "shards" / "00000.tar").write_bytes(b"not a tar at all" * 100)
    _one_line(capsys, cli(["distill", tiny_model, "--data", str(tmp_path / "bad"), "--output", out]),
              "cannot read the shard", "00000.tar")
    assert not (tmp_path / "s").exists()
