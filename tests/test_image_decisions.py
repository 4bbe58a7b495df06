"""The image decisions in one stage (exact dedup, the image checks, near dedup, the bytes shuffled
once) decide what the three stages run one after the other decide, reject for reject."""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.filters.quality import QualityConfig
from clipcurate.pipeline.stages.curate import image_quality
from clipcurate.pipeline.stages.dedup.exact import DedupImages
from clipcurate.pipeline.stages.dedup.images import ImageDecisions
from clipcurate.pipeline.stages.dedup.near import NearDedup, NearDedupConfig
from test_near_dedup import jpeg, row, scene


def _rows() -> list[dict]:
    x, y, z = scene(11), scene(12), scene(13)
    rows = [
        row("a", jpeg(x), "a ball", (320, 240), 0),
        row("a2", jpeg(x), "a ball again, a longer caption", (320, 240), 1),   # same bytes, later: duplicate_image
        # b has the longer caption, so near dedup would keep it over b2, but b fails the size check:
        # near dedup never sees b, and b2 stays
        row("b", jpeg(y), "a box on a table in the sun", (90, 70), 2),
        row("b2", jpeg(y.resize((200, 150)), 70), "a box", (200, 150), 3),
        row("c", jpeg(z), "a cat", (90, 70), 4),                              # first of its bytes, too small
        row("c2", jpeg(z), "a cat", (320, 240), 5),                           # its bytes again: still a duplicate
        row("d", b"not an image at all", "broken", (320, 240), 6),            # no fingerprint: internal_error
        row("e", jpeg(scene(14)), "a tree", (320, 240), 7),
        row("e2", jpeg(scene(14).resize((160, 120)), 60), "a tree", (160, 120), 8),  # near copy, smaller: dropped
    ]
    for r in rows:
        r["sha256"] = hashlib.sha256(r["image"]).hexdigest()
    return rows


def _outcome(kept, rejects, label: str):
    k = kept | f"{label}Kept" >> beam.Map(lambda r: (r["key"], "kept", r.get("phash") is not None, ""))
    r = rejects | f"{label}Rejects" >> beam.Map(
        lambda r: (r["key"], r["reason"], r.get("phash") is not None, r["error_message"].split(" at ")[0]))
    return (k, r) | f"{label}All" >> beam.Flatten()


def test_one_stage_decides_as_the_three_stages_in_a_row():
    quality = image_quality(QualityConfig(min_short_side=100))
    expected = [("a", "kept", True, ""), ("a2", "duplicate_image", False, "same image bytes as in.parquet:0 (http://example.com/a.jpg)"),
                ("b", "small_image", False, "original 90x70: shorter side 70 px < 100"), ("b2", "kept", True, ""),
                ("c", "small_image", False, "original 90x70: shorter side 70 px < 100"),
                ("c2", "duplicate_image", False, "same image bytes as in.parquet:4 (http://example.com/c.jpg)"),
                ("e", "kept", True, "")]
    with TestPipeline() as p:
        rows = p | beam.Create(_rows())
        one_kept, one_rejects = rows | "One" >> ImageDecisions((quality.as_check(),), NearDedupConfig())
        kept, dup = rows | "Exact" >> DedupImages()
        kept, small = kept | "Quality" >> quality
        kept, near = kept | "Near" >> NearDedup(NearDedupConfig())
        chain = _outcome(kept, (dup, small, near) | beam.Flatten(), "Chain")
        one = _outcome(one_kept, one_rejects, "One")
        # the undecodable picture and the near copy: their messages name code lines and keys
        assert_that(one | "OneCore" >> beam.Filter(lambda t: t[0] not in ("d", "e2")), equal_to(expected), label="Expected")
        assert_that(one | "OneOther" >> beam.Filter(lambda t: t[0] in ("d", "e2")) | "OneShort" >> beam.Map(lambda t: t[:3]),
                    equal_to([("d", "internal_error", False), ("e2", "near_duplicate_image", True)]), label="Other")
        both = ({"one": one | "K1" >> beam.Map(lambda t: (t[0], t)), "chain": chain | "K2" >> beam.Map(lambda t: (t[0], t))}
                | beam.CoGroupByKey() | beam.Map(lambda kv: (sorted(kv[1]["one"]) == sorted(kv[1]["chain"]), kv[0])))
        assert_that(both | beam.Filter(lambda t: not t[0]), equal_to([]), label="Same")
