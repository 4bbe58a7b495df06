"""Caption/image quality filters and URL/hash blocklists, alone and as Beam stages."""
from __future__ import annotations

import hashlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.filters.blocklist import BlocklistConfig, BlocklistError, HashBlocklist, UrlBlocklist, check_config
from clipcurate.filters.normalize import normalize_url
from clipcurate.filters.quality import CaptionQuality, ImageQuality, QualityConfig
from clipcurate.pipeline.stages.captions import CaptionStages
from clipcurate.pipeline.stages.curate import caption_quality, hash_blocklist, image_quality, url_blocklist

DATACOMP = QualityConfig(min_short_side=200, max_aspect_ratio=3.0, min_words=3, max_words=50)


def image_row(key, w, h):
    return {"key": key, "caption": "three word caption", "url": f"http://x.example/{key}.jpg",
            "width": min(w, 256), "height": min(h, 256), "original_width": w, "original_height": h}


def reasons(check, rows):
    return [(d.reason if d else None) for d in map(check, rows)]


def test_quality_is_off_by_default():
    config = QualityConfig()
    assert not config.checks_captions and not config.checks_images
    assert CaptionQuality(config).check({"caption": ""}) is None
    assert ImageQuality(config).check(image_row("a", 1, 1)) is None


def test_caption_word_bounds():
    rows = [{"caption": c} for c in ["dog", "a red dog", "  a   red  dog ", " ".join(["w"] * 51), " ".join(["w"] * 50), None]]
    assert reasons(CaptionQuality(DATACOMP).check, rows) == [
        "caption_word_count", None, None, "caption_word_count", None, "caption_word_count"]
    assert "1 words < 3" in CaptionQuality(DATACOMP).check(rows[0]).message


def test_image_size_and_aspect_use_the_original_size():
    rows = [image_row("ok", 400, 300), image_row("small", 199, 1000), image_row("edge", 200, 600),
            image_row("wide", 1000, 300), image_row("tall", 250, 800), image_row("zero", 0, 0)]
    assert reasons(ImageQuality(DATACOMP).check, rows) == [None, "small_image", None, "aspect_ratio", "aspect_ratio", "small_image"]
    only_aspect = ImageQuality(QualityConfig(max_aspect_ratio=3.0))
    assert reasons(only_aspect.check, rows) == [None, "aspect_ratio", None, "aspect_ratio", "aspect_ratio", "aspect_ratio"]
    # the resized size would pass; the original does not
    assert ImageQuality(QualityConfig(min_short_side=200)).check({"width": 256, "height": 256, "original_width": 100, "original_height": 100})


def test_quality_config_is_checked():
    with pytest.raises(ValueError):
        QualityConfig(max_aspect_ratio=0.5)
    with pytest.raises(ValueError):
        QualityConfig(min_words=5, max_words=2)


def test_quality_stages_route_rejects_with_stage_and_reason():
    caption_rows = [{"key": f"c{i}", "caption": c} for i, c in enumerate(["dog", "a red dog", "a small red dog"])]
    image_rows = [image_row("ok", 400, 300), image_row("small", 100, 100), image_row("wide", 900, 250)]
    with TestPipeline() as p:
        batches, rejects = p | "Captions" >> beam.Create([caption_rows]) | "CQ" >> CaptionStages([caption_quality(DATACOMP)])
        kept = batches | "Unbatch" >> beam.FlatMap(lambda batch: batch)
        assert_that(kept | "CK" >> beam.Map(lambda r: r["key"]), equal_to(["c1", "c2"]), label="CaptionKept")
        assert_that(rejects | "CR" >> beam.Map(lambda r: (r["key"], r["stage"], r["reason"])),
                    equal_to([("c0", "quality", "caption_word_count")]), label="CaptionRejects")
        kept, rejects = p | "Images" >> beam.Create(image_rows) | "IQ" >> image_quality(DATACOMP)
        assert_that(kept | "IK" >> beam.Map(lambda r: r["key"]), equal_to(["ok"]), label="ImageKept")
        assert_that(rejects | "IR" >> beam.Map(lambda r: (r["key"], r["stage"], r["reason"])),
                    equal_to([("small", "quality", "small_image"), ("wide", "quality", "aspect_ratio")]), label="ImageRejects")


# --- blocklists ---------------------------------------------------------------------------------

def norm(url):
    return normalize_url(url)[0]


def test_url_blocklist_matches_trivial_variants(tmp_path):
    listed = tmp_path / "urls.txt"
    listed.write_text("# removed by request\nHTTP://Example.COM:80/a%20b.jpg#frag\n\nhttps://other.example/x.png\n")
    block = UrlBlocklist.from_config(BlocklistConfig(url_files=(str(listed),)))
    rows = [{"url": norm(u)} for u in ["http://example.com/a b.jpg", "http://example.com/a%20b.jpg",
                                       "https://other.example/x.png", "https://other.example/y.png",
                                       "http://other.example/x.png"]]
    assert reasons(block.check, rows) == ["blocked_url", "blocked_url", "blocked_url", None, None]


def test_hash_blocklist_text_parquet_and_csv(tmp_path):
    a, b, c, d = (bytes([i]) * 100 for i in range(4))
    (tmp_path / "h.txt").write_text(f"{hashlib.sha256(a).hexdigest().upper()}\n{hashlib.md5(b).hexdigest()}\n")
    pq.write_table(pa.table({"md5": [hashlib.md5(c).hexdigest()]}), tmp_path / "h.parquet")
    (tmp_path / "h.csv").write_text(f"id,hash\n1,{hashlib.sha256(d).hexdigest()}\n")
    config = BlocklistConfig(hash_files=tuple(str(tmp_path / f) for f in ("h.txt", "h.parquet", "h.csv")))
    assert check_config(config) == {"urls": 0, "sha256": 2, "md5": 2}
    block = HashBlocklist.from_config(config)
    rows = [{"sha256": hashlib.sha256(x).hexdigest(), "md5": hashlib.md5(x).hexdigest()} for x in (a, b, c, d, b"free")]
    assert reasons(block.check, rows) == ["blocked_hash"] * 4 + [None]


def test_md5_list_without_md5_on_the_row_is_loud(tmp_path):
    (tmp_path / "h.txt").write_text("0" * 32 + "\n")
    block = HashBlocklist.from_config(BlocklistConfig(hash_files=(str(tmp_path / "h.txt"),)))
    with pytest.raises(KeyError):
        block.check({"sha256": "1" * 64})


@pytest.mark.parametrize("content, kind", [("abc\n", "hash"), ("0" * 40 + "\n", "hash"), ("ftp://x/y\n", "url")])
def test_malformed_entries_fail_up_front_with_file_and_line(tmp_path, content, kind):
    path = tmp_path / "list.txt"
    path.write_text("# header\n" + content)
    config = BlocklistConfig(hash_files=(str(path),)) if kind == "hash" else BlocklistConfig(url_files=(str(path),))
    with pytest.raises(BlocklistError, match="list.txt:2"):
        check_config(config)
    with pytest.raises(BlocklistError, match="missing"):
        check_config(BlocklistConfig(url_files=(str(tmp_path / "missing.txt"),)))


def test_blocklist_stages(tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("http://x.example/bad.jpg\n")
    blocked_bytes = b"blocked image bytes"
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(hashlib.sha256(blocked_bytes).hexdigest() + "\n")
    config = BlocklistConfig(url_files=(str(urls),), hash_files=(str(hashes),))
    rows = [{"key": k, "url": f"http://x.example/{k}.jpg", "caption": "c",
             "sha256": hashlib.sha256(k.encode() if k != "hashed" else blocked_bytes).hexdigest(),
             "md5": "0" * 32} for k in ("bad", "hashed", "fine")]
    with TestPipeline() as p:
        batches, url_rejects = p | beam.Create([rows]) | "Urls" >> CaptionStages([url_blocklist(config)])
        kept = batches | "Unbatch" >> beam.FlatMap(lambda batch: batch)
        kept, hash_rejects = kept | "Hashes" >> hash_blocklist(config)
        assert_that(kept | "K" >> beam.Map(lambda r: r["key"]), equal_to(["fine"]), label="Kept")
        assert_that(url_rejects | "U" >> beam.Map(lambda r: (r["key"], r["stage"], r["reason"])),
                    equal_to([("bad", "blocklist", "blocked_url")]), label="UrlRejects")
        assert_that(hash_rejects | "H" >> beam.Map(lambda r: (r["key"], r["stage"], r["reason"])),
                    equal_to([("hashed", "blocklist", "blocked_hash")]), label="HashRejects")


def test_the_common_url_shortcut_gives_what_the_general_path_gives():
    """normalize_url skips urlsplit/quote for plain http(s) URLs: on 100,000 generated URLs (ports,
    credentials, odd characters, case, fragments, IDN hosts among them) both paths agree."""
    import random

    from clipcurate.filters.normalize import _SIMPLE_URL, canonical_url

    rng = random.Random(1)
    pieces = ["http", "HTTP", "https", ":", "//", "/", "a", "B", "0", "-", ".", "..", "example", "COM", "?", "#",
              "&", "=", "%", "%2F", "~", "_", "@", "!", "$", "'", "(", "*", "+", ",", ";", " ", "é", "\\", "[", "]",
              ":80", ":443", ":8080", "user:pw@", "|", "^", "{", "\"", "<", "\u00a0", "日本"]
    shortcut = 0
    for _ in range(100_000):
        url = rng.choice(["http://", "https://", "HTTP://", ""]) + "".join(
            rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        raw = url.strip()
        if not raw or "\x00" in raw:
            continue
        if _SIMPLE_URL.fullmatch(raw):
            shortcut += 1
            assert normalize_url(url) == canonical_url(raw), url
    assert shortcut > 1000
    assert normalize_url("HTTPS://Example.COM?q=1#top") == ("https://example.com/?q=1", None)
