"""``clipcurate bootstrap`` / ``clipcurate eval`` end to end, and the synthetic shape generator."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np

from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.cli import main as cli


def test_synth_is_deterministic_and_draws_every_label(tmp_path):
    a = synth.write_image_folder(tmp_path / "a", synth.LABELS, per_label=2, seed=3, size=32)
    b = synth.write_image_folder(tmp_path / "b", synth.LABELS, per_label=2, seed=3, size=32)
    assert len(a) == 2 * len(synth.LABELS) >= 20
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(synth.LABELS)
    text = synth.make_text_image("hello", np.random.default_rng(0), 64)
    assert text.size == (64, 64) and len(set(text.getdata())) > 2
    caption = synth.make_web_caption("star", np.random.default_rng(0))
    assert "star" in caption


def test_bootstrap_cli_writes_a_model_and_eval_prints_accuracy(tmp_path, capsys):
    seed = tmp_path / "seed"
    synth.write_image_folder(seed, ["circle", "star", "ring"], per_label=4, seed=0, size=32)
    model = tmp_path / "model"
    argv = ["bootstrap", str(seed), "--output", str(model), "--epochs", "2", "--batch-size", "6",
            "--image-size", "32", "--device", "cpu", "--seed", "1", "--vision-layers", "2"]
    assert cli(argv) == 0
    for name in ("model.safetensors", "config.json", "tokenizer.json", "train_log.jsonl", "checkpoint.pt"):
        assert (model / name).is_file()
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "img/s" in err
    config = json.loads((model / "config.json").read_text())
    assert config["clip"]["image_size"] == 32 and config["labels"] == ["circle", "ring", "star"]
    assert config["clip"]["vision_layers"] == 2 and config["clip"]["text_layers"] == 1
    assert cli(argv) == 0  # rerun: already finished, resumes to nothing
    assert "already finished" in capsys.readouterr().err

    assert cli(["eval", str(model), "--labelled", str(seed), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("zero-shot accuracy:") and "star" in out
    assert cli(["eval", str(model), "--labelled", str(seed), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["accuracy"] <= 1 and result["n"] == 12


def _write_shard(path, pairs):
    with tarfile.open(path, "w") as tar:
        for i, (image, caption) in enumerate(pairs):
            for ext, data in (("jpg", image), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_bootstrap_round_on_shards_and_training_from_shards(tmp_path, capsys):
    seed = tmp_path / "seed"
    synth.write_image_folder(seed, ["circle", "star"], per_label=4, seed=0, size=32)
    rng = np.random.default_rng(5)
    pairs = [(synth.encode_jpeg(synth.make_image(label, rng, 40)), synth.make_web_caption(label, rng))
             for label in ("circle", "star") * 4]
    (tmp_path / "web" / "shards").mkdir(parents=True)
    _write_shard(tmp_path / "web" / "shards" / "00000.tar", pairs)
    model = tmp_path / "model"
    common = ["--epochs", "1", "--batch-size", "4", "--image-size", "32", "--device", "cpu"]
    assert cli(["bootstrap", str(seed), "--output", str(model), *common,
                "--bootstrap-round", str(tmp_path / "web"), "--round-epochs", "1", "--round-top", "0.5"]) == 0
    log = [json.loads(line) for line in (model / "train_log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in log][0] == "seed" and log[-1]["phase"].startswith("round:")
    assert "4 web pairs + 8 seed images" in capsys.readouterr().err
    # the curated shards alone as a training set (closing the loop)
    assert cli(["bootstrap", str(tmp_path / "web"), "--output", str(tmp_path / "m2"), *common]) == 0
    assert (tmp_path / "m2" / "model.safetensors").is_file()


def test_bootstrap_cli_errors_are_one_line(tmp_path, capsys):
    assert cli(["bootstrap", str(tmp_path / "missing"), "--output", str(tmp_path / "m")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli(["eval", str(tmp_path), "--labelled", str(tmp_path)]) == 2
    assert "not a bootstrap CLIP folder" in capsys.readouterr().err
    synth.write_image_folder(tmp_path / "seed", ["circle", "star"], per_label=2, seed=0, size=32)
    assert cli(["bootstrap", str(tmp_path / "seed"), "--output", str(tmp_path / "m"), "--text-layers", "0"]) == 2
    err = capsys.readouterr().err
    assert "at least 1 transformer layer" in err and "Traceback" not in err
