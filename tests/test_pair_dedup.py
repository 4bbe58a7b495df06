"""Pair dedup on URL buckets, and the packed rows its shuffle (and the writers') carry."""
from __future__ import annotations

import os

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline.packed import pack_rows, unpack_rows
from clipcurate.pipeline.stages.dedup.exact import DedupPairs, PairDedupConfig, buckets_for


def test_packed_rows_come_back_as_the_same_dicts_in_the_same_order():
    rows = [{"url": "http://a/1.jpg", "caption": "a dog", "source_row": 0, "score": 0.5},
            {"url": "http://a/2.jpg", "caption": None, "source_row": 1, "score": 1.0},
            {"caption": "no url field", "flag": True, "tags": ["x", "y"], "raw": b"\x00\xff"},
            {"url": "http://a/3.jpg", "caption": "ünïcode ✓", "source_row": 2, "score": -2.25},
            {"nested": {"k": (1, 2)}, "big": 2**62, "url": ""}]
    back = unpack_rows(pack_rows(rows))
    assert back == rows
    assert [list(r) for r in back] == [list(r) for r in rows]  # key order too
    assert [type(v) for r in back for v in r.values()] == [type(v) for r in rows for v in r.values()]
    assert unpack_rows(pack_rows([])) == []


def test_packed_rows_read_as_columns_match_the_rows():
    from clipcurate.pipeline.packed import unpack_columns

    a = [{"key": "b", "url": "u1", "n": 1}, {"key": "a", "url": "u2"}, {"key": "c", "url": "u3", "n": 3}]
    b = [{"key": "d", "n": 4, "url": "u4"}]
    n, cols = unpack_columns([pack_rows(a), pack_rows(b), pack_rows([])], ["key", "url", "n", "absent"])
    assert n == 4
    got = sorted(zip(cols["key"], cols["url"], cols["n"], cols["absent"]))
    assert got == sorted((r["key"], r["url"], r.get("n"), None) for r in a + b)


def test_packing_drops_the_per_row_field_names():
    rows = [{"url": f"http://example.com/{i}.jpg", "caption": "a red car", "source_file": "in.parquet",
             "source_row": i, "key": f"{i:024x}"} for i in range(1000)]
    per_row = len(pack_rows(rows)) / len(rows)
    names = sum(len(k) for k in rows[0])
    assert per_row < sum(len(str(v)) for v in rows[0].values()) + names  # names are not repeated per row


def _row(url, caption, file, n):
    return {"url": url, "caption": caption, "source_file": file, "source_row": n, "key": f"{file}-{n}"}


def test_a_url_repeated_in_every_batch_keeps_its_first_row_and_names_it():
    rng = random.Random(3)
    rows = []
    for n in range(3000):
        if n % 3 == 0:  # a hot URL: a third of all rows
            rows.append(_row("http://cdn.example.com/placeholder.gif", rng.choice(["logo", "spacer"]), "b.parquet", n))
        else:
            rows.append(_row(f"http://example.com/{n % 700}.jpg", f"caption {n % 2}", "b.parquet", n))
    rows.append(_row("http://cdn.example.com/placeholder.gif", "spacer", "a.parquet", 99))  # first in input order
    rng.shuffle(rows)
    batches = [rows[i:i + 128] for i in range(0, len(rows), 128)]

    def expected():
        first, kept, rejects = {}, [], []
        for r in sorted(rows, key=lambda r: (r["source_file"], r["source_row"])):
            f = first.setdefault(r["url"], r)
            if f is r:
                kept.append(r["key"])
            else:
                reason = "duplicate_pair" if r["caption"] == f["caption"] else "duplicate_url"
                rejects.append((r["key"], reason, f"{f['source_file']}:{f['source_row']}"))
        return kept, rejects

    kept_keys, reject_rows = expected()
    with TestPipeline(runner="DirectRunner") as p:
        kept, rejects = p | beam.Create(batches) | DedupPairs(PairDedupConfig(buckets=7, batch_rows=100))
        assert_that(kept | "sizes" >> beam.Map(len) | "max" >> beam.CombineGlobally(max),
                    equal_to([100]), label="batches")
        assert_that(kept | "rows" >> beam.FlatMap(lambda b: [r["key"] for r in b]), equal_to(kept_keys), label="kept")
        assert_that(rejects | "r" >> beam.Map(lambda r: (r["key"], r["reason"], r["error_message"].rsplit(" ", 1)[-1])),
                    equal_to(reject_rows), label="rejects")
    assert ("b.parquet-0", "duplicate_url", "a.parquet:99") in reject_rows or \
           ("b.parquet-0", "duplicate_pair", "a.parquet:99") in reject_rows


def test_rows_with_the_same_place_in_the_input_still_keep_one():
    same = [{"url": "http://a/x.jpg", "caption": "c", "source_file": None, "source_row": None, "key": "k"}] * 3
    with TestPipeline(runner="DirectRunner") as p:
        kept, rejects = p | beam.Create([same[:2], same[2:]]) | DedupPairs()
        assert_that(kept | beam.Map(len), equal_to([1]), label="kept")
        assert_that(rejects | beam.Map(lambda r: r["reason"]), equal_to(["duplicate_pair"] * 2), label="rejects")


def test_bucket_count_follows_the_input_size():
    assert buckets_for(0) == 1
    assert buckets_for(10_000) == 1
    assert buckets_for(64 * 100_000 * 10) == 10  # about 100 k small rows a bucket
    assert buckets_for(7 * 2**30) > 1000          # a 7 GiB table: over a thousand groups, not one


def test_a_picture_under_many_urls_keeps_the_first_row_and_names_it_in_every_reject():
    from clipcurate.pipeline.stages.dedup.exact import DedupImages

    rows = [{"url": f"http://site{n}.example.com/spacer.gif", "caption": f"c{n}", "sha256": "ab" * 32,
             "source_file": "in.parquet", "source_row": n, "key": f"k{n}"} for n in range(500)]
    rows += [{"url": "http://other.example.com/a.jpg", "caption": "a", "sha256": "cd" * 32,
              "source_file": "in.parquet", "source_row": 1000, "key": "k1000"}]
    random.Random(5).shuffle(rows)
    with TestPipeline(runner="DirectRunner") as p:
        kept, rejects = p | beam.Create(rows) | DedupImages()
        assert_that(kept | "k" >> beam.Map(lambda r: r["key"]), equal_to(["k0", "k1000"]), label="kept")
        assert_that(rejects | "r" >> beam.Map(lambda r: (r["reason"], r["error_message"])),
                    equal_to([("duplicate_image", "same image bytes as in.parquet:0 (http://site0.example.com/spacer.gif)")]
                             * 499), label="rejects")


def test_pairs_files_are_sorted_key_ranges_counted_from_the_estimate_or_the_rows(tmp_path):
    import glob
    import hashlib

    import pyarrow.parquet as pq

    from clipcurate.pipeline.sinks.pairs import WritePairs

    rows = [{"url": f"http://example.com/{i}.jpg", "caption": f"c {i}", "source_file": "in", "source_row": i,
             "key": hashlib.sha256(str(i).encode()).hexdigest()[:24]} for i in range(900)]
    for name, expected, files in (("estimate", 2000, 4), ("counted", None, 2)):
        out = str(tmp_path / name)
        with TestPipeline(runner="DirectRunner") as p:
            _ = (p | beam.Create([rows[i:i + 64] for i in range(0, len(rows), 64)])
                 | WritePairs(out, "normalize", (), rows_per_file=500, expected_rows=expected))
        found = sorted(glob.glob(f"{out}/pairs/*.parquet"))
        assert len(found) == files
        keys = [pq.read_table(f).column("key").to_pylist() for f in found]
        assert all(k == sorted(k) for k in keys)
        assert all(a[-1] < b[0] for a, b in zip(keys, keys[1:]))  # ranges, in file order
        assert sum(len(k) for k in keys) == 900
        assert not [f for f in glob.glob(f"{out}/_pieces/**", recursive=True) if not os.path.isdir(f)]
        assert sorted(k for ks in keys for k in ks) == sorted(r["key"] for r in rows)
