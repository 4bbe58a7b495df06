"""``run --until STAGE``: metadata only. The rows that survive the caption stages are written as
OUT/pairs/NNNNN.parquet with the rejects and stats, and nothing is downloaded."""
from __future__ import annotations

import glob
import json

import pyarrow.parquet as pq

from clipcurate.pipeline.cli import main as cli_main
from test_run import MIXED_ARGS, write_mixed_input


def test_until_prompts_writes_the_surviving_rows_and_fetches_nothing(web, tmp_path, capsys):
    rows, src = write_mixed_input(web, tmp_path)
    before = {p: web.hit_count(p) for p in ("/run/a.jpg", "/good.jpg", "/404")}
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--until", "prompts",
                     "--languages", "en"]) == 0
    assert {p: web.hit_count(p) for p in before} == before  # no request at all
    files = sorted(glob.glob(str(out / "pairs" / "*.parquet")))
    assert files and not glob.glob(str(out / "shards" / "*.tar"))
    table = pq.read_table(files)
    stats = json.load(open(out / "stats.json"))
    assert stats["input_rows"] == len(rows) == table.num_rows + stats["rejected"] and stats["kept"] == table.num_rows
    assert {r["stage"] for r in stats["stages"]} <= {"normalize", "dedup", "language"}
    names = set(table.column_names)
    assert {"key", "url", "caption", "language", "language_score", "expect", "src_similarity"} <= names
    assert not names & {"sha256", "width", "phash", "similarity"}  # fields of stages that did not run
    keys = table.column("key").to_pylist()
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert set(table.column("language").to_pylist()) == {"en"}
    capsys.readouterr()
    assert cli_main(["sql", str(out), "select count(*) as n from pairs", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == table.num_rows


def test_until_dedup_has_no_language_columns_and_does_not_go_with_clip(web, tmp_path, capsys):
    rows, src = write_mixed_input(web, tmp_path)
    out = tmp_path / "out"
    assert cli_main(["run", "--input", src, "--output", str(out), *MIXED_ARGS, "--until", "dedup"]) == 0
    table = pq.read_table(sorted(glob.glob(str(out / "pairs" / "*.parquet"))))
    assert "language" not in table.column_names and table.num_rows > 0
    assert cli_main(["run", "--input", src, "--output", str(tmp_path / "o2"), *MIXED_ARGS, "--until", "dedup",
                     "--clip", str(tmp_path)]) == 2
    assert "--until" in capsys.readouterr().err
