import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from clipcurate.filters.prompts import PromptConfig
from clipcurate.pipeline.sources.errors import InputError
from clipcurate.pipeline.files import resolve_local
from clipcurate.pipeline.sources.labelled import LabelledConfig, list_labels, read_labelled


def _image(path, colour, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), colour).save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "seed"
    _image(root / "golden_retriever" / "b.png", "yellow")
    _image(root / "golden_retriever" / "a.JPG", "orange", "JPEG")
    _image(root / "apple" / "001.jpg", "red")
    _image(root / "apple" / "nested" / "002.webp", "green")
    _image(root / "apple" / ".hidden.jpg", "red")
    (root / "apple" / "notes.txt").write_text("not an image")
    _image(root / ".cache" / "x.jpg", "blue")
    _image(root / "loose.jpg", "blue")  # not in a label folder
    return root


def test_image_folder_rows(folder):
    rows = read_labelled(LabelledConfig(str(folder)))
    assert [r["url"] for r in rows] == [
        "apple/001.jpg", "apple/nested/002.webp", "golden_retriever/a.JPG", "golden_retriever/b.png"]
    assert [r["caption"] for r in rows] == [
        "a photo of an apple.", "a photo of an apple.",
        "a photo of a golden retriever.", "a photo of a golden retriever."]
    assert [r["raw_caption"] for r in rows] == ["apple", "apple", "golden_retriever", "golden_retriever"]
    assert [r["label"] for r in rows] == ["apple", "apple", "golden retriever", "golden retriever"]
    assert [r["source_row"] for r in rows] == [0, 1, 2, 3]
    assert {r["source_file"] for r in rows} == {str(folder)}
    for row in rows:
        assert os.path.isabs(row["local_path"]) and "invalid_path" not in row
        with Image.open(row["local_path"]) as im:
            assert im.size == (16, 12)
    assert list_labels(LabelledConfig(str(folder))) == ["apple", "golden retriever"]


def test_image_folder_is_deterministic_and_uses_domain(folder):
    config = LabelledConfig(str(folder), PromptConfig(domain="food"))
    rows = read_labelled(config)
    assert rows == read_labelled(config)
    assert rows[0]["caption"] == "a photo of an apple, a type of food."


def test_path_escaping_the_root_is_marked_not_read(tmp_path):
    root = tmp_path / "seed"
    _image(root / "cat" / "ok.jpg", "white")
    secret = _image(tmp_path / "outside" / "secret.jpg", "black")
    (root / "cat" / "link.jpg").symlink_to(secret)
    (root / "dog").symlink_to(tmp_path / "outside", target_is_directory=True)
    rows = read_labelled(LabelledConfig(str(root)))
    by_url = {r["url"]: r for r in rows}
    assert set(by_url) == {"cat/link.jpg", "cat/ok.jpg", "dog/secret.jpg"}
    assert by_url["cat/ok.jpg"]["local_path"] == str((root / "cat" / "ok.jpg").resolve())
    for url in ("cat/link.jpg", "dog/secret.jpg"):
        assert by_url[url]["local_path"] is None and by_url[url]["invalid_path"] is True
        assert by_url[url]["caption"]  # still a full row, for the rejects table


def test_resolve_local(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert resolve_local(str(root), "a/x.jpg") == str((root / "a" / "x.jpg").resolve())
    assert resolve_local(str(root), "a/../a/x.jpg") == str((root / "a" / "x.jpg").resolve())
    assert resolve_local(str(root), "../root2/x.jpg") is None
    assert resolve_local(str(root), "/etc/passwd") is None
    assert resolve_local(str(root), "") is None
    assert resolve_local(str(root), "bad\0name") is None


def test_table_with_label_and_path(tmp_path):
    _image(tmp_path / "imgs" / "1.jpg", "red")
    _image(tmp_path / "imgs" / "2.png", "blue")
    _image(tmp_path / "secret.jpg", "black")
    data = tmp_path / "data"
    data.mkdir()
    (data / "imgs").symlink_to(tmp_path / "imgs")  # inside data/ but pointing out of it
    _image(data / "own" / "3.jpg", "green")
    table = pa.table({
        "label": ["Boxer", "hourGlass", "Boxer", None],
        "path": ["own/3.jpg", "../secret.jpg", "imgs/1.jpg", "own/3.jpg"],
        "photographer": ["ann", "bo", "cy", "di"],
        "key": ["k1", "k2", "k3", "k4"],  # a reserved name: carried as src_key
    })
    pq.write_table(table, data / "seed.parquet")
    rows = read_labelled(LabelledConfig(str(data / "seed.parquet"), PromptConfig(domain="dog")))
    assert [r["url"] for r in rows] == ["own/3.jpg", "../secret.jpg", "imgs/1.jpg", "own/3.jpg"]
    assert rows[0]["caption"] == "a photo of a boxer, a type of dog."
    assert rows[0]["raw_caption"] == "Boxer" and rows[0]["label"] == "boxer"
    assert rows[0]["local_path"] == str((data / "own" / "3.jpg").resolve())
    assert rows[0]["photographer"] == "ann" and rows[0]["src_key"] == "k1" and "key" not in rows[0]
    assert rows[0]["source_file"] == str(data / "seed.parquet") and rows[2]["source_row"] == 2
    assert rows[1]["local_path"] is None and rows[1]["invalid_path"] is True
    assert rows[2]["local_path"] is None and rows[2]["invalid_path"] is True
    assert rows[3]["caption"] == "" and rows[3]["label"] == ""  # no label: rejected downstream as empty_caption
    assert list_labels(LabelledConfig(str(data / "seed.parquet"))) == ["boxer", "hour glass"]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_text_tables(tmp_path, suffix):
    _image(tmp_path / "x" / "1.jpg", "red")
    records = [{"label": "owl", "image_path": "x/1.jpg"}, {"label": "cat", "image_path": "x/2.jpg"}]
    path = tmp_path / f"seed{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        path.write_text("label" + sep + "image_path\n" + "".join(f"{r['label']}{sep}{r['image_path']}\n" for r in records))
    rows = read_labelled(LabelledConfig(str(path)))
    assert [(r["url"], r["caption"]) for r in rows] == [("x/1.jpg", "a photo of an owl."), ("x/2.jpg", "a photo of a cat.")]
    assert rows[0]["local_path"] == str((tmp_path / "x" / "1.jpg").resolve())


def test_table_with_urls(tmp_path):
    path = tmp_path / "seed.csv"
    path.write_text("url,label,credit\nhttp://127.0.0.1/a.jpg,Eagle,x\nhttp://127.0.0.1/b.jpg,dog,y\n")
    rows = read_labelled(LabelledConfig(str(path)))
    assert rows[0] == {"url": "http://127.0.0.1/a.jpg", "caption": "a photo of an eagle.", "raw_caption": "Eagle",
                       "label": "eagle", "local_path": None, "source_file": str(path), "source_row": 0,
                       "credit": "x"}


def test_errors_are_one_line_usage_errors(tmp_path):
    def error(source):
        with pytest.raises(InputError) as info:
            read_labelled(LabelledConfig(str(source)))
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "does not exist" in error(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    assert "no images" in error(tmp_path / "empty")
    (tmp_path / "textonly" / "dog").mkdir(parents=True)
    (tmp_path / "textonly" / "dog" / "readme.txt").write_text("x")
    assert "no images" in error(tmp_path / "textonly")
    (tmp_path / "nolabel.csv").write_text("path,caption\na.jpg,x\n")
    assert "'label'" in error(tmp_path / "nolabel.csv")
    (tmp_path / "nopath.csv").write_text("label,caption\ndog,x\n")
    assert "'path'" in error(tmp_path / "nopath.csv")
    (tmp_path / "norows.csv").write_text("label,path\n")
    assert "no rows" in error(tmp_path / "norows.csv")
    (tmp_path / "seed.txt").write_text("dog\n")
    assert "neither" in error(tmp_path / "seed.txt")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert "cannot read" in error(tmp_path / "broken.parquet")


def test_a_folder_swapped_for_a_symlink_while_reading_never_leads_outside(tmp_path):
    """Another process swaps a folder inside the root for a symlink to a folder outside and back, as fast
    as it can. Checking the path and then opening it leaks the outside file (thousands of times in 10,000
    reads); checking the opened file never does: the reader gets the inside bytes or a local_file_error."""
    import subprocess
    import sys
    import time

    from clipcurate.pipeline.stages.download import read_local

    root, outside = tmp_path / "seed", tmp_path / "outside"
    (root / "cat").mkdir(parents=True)
    outside.mkdir()
    (root / "cat" / "x.jpg").write_bytes(b"inside")
    (outside / "x.jpg").write_bytes(b"secret")
    swapper = subprocess.Popen([sys.executable, "-c", (
        "import os\n"
        f"os.chdir({str(root)!r})\n"
        "while True:\n"
        f"    os.rename('cat', '.real'); os.symlink({str(outside)!r}, 'cat'); os.unlink('cat'); os.rename('.real', 'cat')\n")])
    try:
        time.sleep(0.2)
        seen = [read_local(str(root / "cat" / "x.jpg"), str(root), 1000) for _ in range(10_000)]
    finally:
        swapper.kill()
        swapper.wait()
    assert all(data in (None, b"inside") for data, _ in seen)
    assert all(drop.reason == "local_file_error" for data, drop in seen if data is None)
    assert any(data == b"inside" for data, _ in seen) and any(data is None for data, _ in seen)


def test_a_fifo_in_the_folder_is_refused_without_hanging(tmp_path):
    from clipcurate.pipeline.stages.download import read_local

    root = tmp_path / "seed"
    root.mkdir()
    os.mkfifo(root / "pipe.jpg")
    data, drop = read_local(str(root / "pipe.jpg"), str(root), 1000)
    assert data is None and drop.reason == "local_file_error" and "not a regular file" in drop.message
