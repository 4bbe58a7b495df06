"""A run that fails leaves the previous output as it was and says why in one line; the model is loaded
on the workers, and its textness probe is trained once (bootstrap / ``clipcurate textness``), not per run."""
from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from clipcurate.pipeline.cli import main as cli_main
from clipcurate.pipeline.clip import store
from test_run import MIXED_ARGS, write_mixed_input


@pytest.fixture(scope="module")
def mixed_input(web, tmp_path_factory):
    return write_mixed_input(web, tmp_path_factory.mktemp("fail-input"))


def _fingerprint(out) -> dict:
    found = {}
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d not in ("_work", "_next")]
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, out)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def test_a_corrupt_model_fails_the_run_in_one_line_and_keeps_the_previous_output(mixed_input, tiny_model, tmp_path,
                                                                                 capsys):
    _, src = mixed_input
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS]) == 0
    before = _fingerprint(out)
    assert {"stats.json", "report.html", "shards/sizes.json"} <= set(before)
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / store.WEIGHTS).write_bytes(b"\x00not safetensors at all" * 10)
    capsys.readouterr()
    code = cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", str(broken),
                     "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("clipcurate run: failed: ") and len(err[-1]) < 600
    assert "Traceback" not in "\n".join(err)
    assert _fingerprint(out) == before  # nothing of the old output was touched


def test_a_run_that_fails_on_most_rows_is_a_failure_not_a_success(mixed_input, tiny_model, tmp_path, capsys,
                                                                   monkeypatch):
    """A model that loads but cannot embed anything (here: every image batch raises) is systemic."""
    _, src = mixed_input
    out = tmp_path / "out"
    from clipcurate.pipeline.clip import scorer

    def broken(self, images):
        raise RuntimeError("CUDA error: out of memory (simulated)")

    monkeypatch.setattr(scorer.ClipScorer, "embed_images", broken)
    code = cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--clip", tiny_model, "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "internal errors" in err[-1] and "RuntimeError" not in err[-1]
    assert not (out / "stats.json").exists() and not (out / "shards" / "sizes.json").exists()


def test_the_probe_comes_from_the_model_folder_and_is_needed_for_textness_options(mixed_input, tiny_model, tmp_path,
                                                                                    capsys):
    _, src = mixed_input
    bare = tmp_path / "bare-model"
    shutil.copytree(tiny_model, bare)
    os.remove(bare / "textness.json")
    code = cli_main(["run", "--input", src, "--output", str(tmp_path / "o1"), *MIXED_ARGS, "--clip", str(bare),
                     "--max-textness", "0.5"])
    assert code == 2 and "clipcurate textness" in capsys.readouterr().err
    assert cli_main(["textness", str(bare), "--device", "cpu"]) == 0
    assert (bare / "textness.json").exists()
    assert cli_main(["run", "--input", src, "--output", str(tmp_path / "o2"), *MIXED_ARGS, "--clip", str(bare),
                     "--device", "cpu", "--max-textness", "0.99"]) == 0
    import pyarrow.parquet as pq
    import glob

    kept = pq.read_table(sorted(glob.glob(str(tmp_path / "o2" / "shards" / "*.parquet")))).to_pylist()
    assert kept and all(r["textness"] is not None and r["textness"] <= 0.99 for r in kept)


def test_a_report_that_cannot_be_imported_is_said_on_stderr_not_skipped_silently(mixed_input, tmp_path, capsys,
                                                                                  monkeypatch):
    """The shards and stats are still written; the missing report.html is a note, not a silence."""
    import sys

    _, src = mixed_input
    out = tmp_path / "out"
    monkeypatch.setitem(sys.modules, "clipcurate.pipeline.inspect.report", None)  # import now raises ImportError
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS]) == 0
    err = capsys.readouterr().err
    assert "report.html not written" in err and "Traceback" not in err
    assert (out / "stats.json").exists() and not (out / "report.html").exists()
