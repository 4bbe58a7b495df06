"""Near-duplicate images: perceptual hashes, band grouping and the keep rule, through Beam."""
from __future__ import annotations

import io
import typing
import random

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image, ImageDraw

from clipcurate.filters.phash import band_keys, hamming, phash
from clipcurate.pipeline.stages.dedup.near import NearDedup, NearDedupConfig


def scene(seed: int, size=(320, 240)) -> Image.Image:
    r = random.Random(seed)
    img = Image.new("RGB", size, tuple(r.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = r.randrange(size[0]), r.randrange(size[1])
        box = (x0, y0, x0 + r.randrange(20, 160), y0 + r.randrange(20, 120))
        colour = tuple(r.randrange(256) for _ in range(3))
        (draw.ellipse if r.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return img


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def row(key: str, image: bytes, caption: str, size: tuple[int, int], source_row: int) -> dict:
    return {"key": key, "url": f"http://example.com/{key}.jpg", "caption": caption, "image": image,
            "width": size[0], "height": size[1], "original_width": size[0], "original_height": size[1],
            "source_file": "in.parquet", "source_row": source_row}


def test_reencoded_and_resized_copy_is_close_and_other_images_are_far():
    original = scene(1)
    copy = original.resize((160, 120))
    assert hamming(phash(jpeg(original)), phash(jpeg(copy, 60))) <= 2
    others = [phash(jpeg(scene(s))) for s in range(2, 40)]
    assert min(hamming(phash(jpeg(original)), h) for h in others) > 12


def test_phash_is_16_hex_digits_and_handles_png_with_alpha():
    img = scene(3).convert("RGBA")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    h = phash(buf.getvalue())
    assert len(h) == 16 and int(h, 16) >= 0
    assert hamming(h, phash(jpeg(scene(3)))) <= 4


def test_close_hashes_share_a_band():
    base = int(phash(jpeg(scene(5))), 16)
    r = random.Random(0)
    for _ in range(200):
        flipped = base
        for bit in r.sample(range(64), 6):
            flipped ^= 1 << bit
        assert set(band_keys(base, 8)) & set(band_keys(flipped, 8))


def test_config_refuses_a_distance_that_probes_too_much():
    assert NearDedupConfig(max_distance=8, bands=8).radius == 1  # probing: the distance may exceed the bands
    with pytest.raises(ValueError):
        NearDedupConfig(max_distance=40, bands=4)  # 16-bit bands probed within 10 bits: too many values
    with pytest.raises(ValueError):
        NearDedupConfig(max_distance=64)


def check_near_dedup(rows, kept_keys, rejects, config=NearDedupConfig()):
    """Runs NearDedup; ``rejects`` is a list of (key, name that the message must contain)."""
    def check_rejects(actual):
        got = sorted((r["key"], r["reason"], r["stage"]) for r in actual)
        assert got == sorted((k, "near_duplicate_image", "image_dedup") for k, _ in rejects), got
        by_key = {r["key"]: r for r in actual}
        for key, kept_name in rejects:
            assert kept_name in by_key[key]["error_message"], by_key[key]["error_message"]
            assert len(by_key[key]["phash"]) == 16 and "image" not in by_key[key]

    with TestPipeline() as p:
        kept, dropped = p | beam.Create(rows) | NearDedup(config)
        assert_that(kept | "KeptKeys" >> beam.Map(lambda r: r["key"]), equal_to(kept_keys), label="Kept")
        assert_that(kept | "HasPhash" >> beam.Map(lambda r: len(r["phash"])), equal_to([16] * len(kept_keys)), label="Phash")
        assert_that(dropped, check_rejects, label="Rejects")


def test_near_duplicate_dropped_by_keep_rule_and_different_image_kept():
    original = scene(1)
    rows = [
        row("orig", jpeg(original), "a red ball", (320, 240), 0),
        # re-encoded at quality 60, resized to half, at another URL, with a longer caption: it wins
        row("copy", jpeg(original.resize((160, 120)), 60), "a red ball on the grass", (160, 120), 1),
        row("other", jpeg(scene(2)), "a blue box", (320, 240), 2),
    ]
    check_near_dedup(rows, ["copy", "other"], [("orig", "copy (in.parquet:1")])


def test_ties_go_to_the_larger_original_then_to_input_order():
    original = scene(7)
    small = jpeg(original.resize((160, 120)), 60)
    rows = [row("a", small, "same caption", (160, 120), 0),
            row("b", jpeg(original), "same caption", (320, 240), 1),
            row("c", jpeg(original), "same caption", (320, 240), 2)]
    check_near_dedup(rows, ["b"], [("a", "b (in.parquet:1"), ("c", "b (in.parquet:1")])


@pytest.mark.parametrize("reverse", [False, True])
def test_many_rows_each_emitted_exactly_once_whatever_the_order(reverse):
    rows = []
    for s in range(12):
        img = scene(100 + s)
        rows.append(row(f"s{s}", jpeg(img), "x" * (s % 3 + 1), (320, 240), 2 * s))
        rows.append(row(f"s{s}dup", jpeg(img.resize((200, 150)), 70), "x" * (s % 3 + 1), (200, 150), 2 * s + 1))
    rows = rows[::-1] if reverse else rows
    check_near_dedup(rows, [f"s{s}" for s in range(12)], [(f"s{s}dup", f"s{s} (") for s in range(12)])


def test_an_undecodable_image_is_an_internal_error_not_a_crash():
    rows = [row("bad", b"not an image", "caption", (10, 10), 0), row("ok", jpeg(scene(1)), "caption", (320, 240), 1)]
    with TestPipeline() as p:
        kept, rejects = p | beam.Create(rows) | NearDedup()
        assert_that(kept | "K" >> beam.Map(lambda r: r["key"]), equal_to(["ok"]), label="Kept")
        assert_that(rejects | "R" >> beam.Map(lambda r: (r["key"], r["reason"])), equal_to([("bad", "internal_error")]), label="Rejects")


def _thumb(r: random.Random) -> np.ndarray:
    """A smooth random 32x32 colour thumbnail (a 4x4 grid of colours, upsampled)."""
    grid = np.array([[r.randrange(256) for _ in range(48)]], dtype=np.uint8).reshape(4, 4, 3)
    return np.asarray(Image.fromarray(grid).resize((32, 32), Image.Resampling.BILINEAR))


def _summaries(n, seed, hot=0):
    """Random fingerprints with planted near copies (keys 0-8 bits apart, the thumbnail with a little
    noise: confirmed), planted look-alikes (close keys, another thumbnail: not confirmed) and ``hot``
    rows sharing one fingerprint."""
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    keys, thumbs = [], []
    for i in range(n):
        if keys and r.random() < 0.4:
            j = r.randrange(len(keys))
            k = keys[j]
            for bit in r.sample(range(64), r.randint(0, 8)):
                k ^= 1 << bit
            copy = r.random() < 0.75
            t = np.clip(thumbs[j] + rng.normal(0, 2, thumbs[j].shape), 0, 255).astype(np.uint8) if copy else _thumb(r)
        else:
            k, t = r.getrandbits(64), _thumb(r)
        keys.append(k)
        thumbs.append(t)
    keys += [keys[0]] * hot
    thumbs += [thumbs[0]] * hot
    return [(f"id{i}", (k, k ^ 0xFFFF), (-r.randint(0, 3), i), f"row{i}", t.tobytes(), None)
            for i, (k, t) in enumerate(zip(keys, thumbs))]


def _brute_force(summaries, d):
    """Every row against every other: the best-ranked confirmed near-duplicate, and its message."""
    from clipcurate.filters.near_print import key_distance, same_picture
    from clipcurate.pipeline.stages.dedup.near import print_id

    out = set()
    for s in summaries:
        best = None
        for t in summaries:
            if not t[2] < s[2] or key_distance(s[1], t[1]) > d:
                continue
            if print_id(s) == print_id(t):
                alike = 1.0
            else:
                first, second = sorted((s, t), key=print_id)
                ok, sims = same_picture([first[4]], [second[4]])
                if not ok[0]:
                    continue
                alike = round(float(sims[0, 0]), 4)
            if best is None or t[2] < best[0][2]:
                best = (t, alike)
        if best is not None:
            t, alike = best
            dist = 0 if print_id(s) == print_id(t) else key_distance(s[1], t[1])
            out.add((s[0], t[2], f"near-duplicate of {t[3]}: keys {dist} bits apart, thumbnails {alike:.3f} alike"))
    return out


@pytest.mark.parametrize("d,bands", [(6, 7), (6, 4), (6, 8), (3, 4), (9, 4), (0, 4), (15, 8)])
def test_decisions_equal_comparing_every_row_with_every_other(d, bands):
    from clipcurate.pipeline.stages.dedup.near import NearDecisions

    summaries = _summaries(200, seed=d * 10 + bands, hot=40)
    expected = _brute_force(summaries, d)
    assert len(expected) > 40  # the planted copies and the hot fingerprint are found
    with TestPipeline() as p:
        got = (p | beam.Create(range(len(summaries))) | beam.Map(lambda i: summaries[i]).with_output_types(typing.Any) | NearDecisions(NearDedupConfig(max_distance=d, bands=bands))
               | beam.MapTuple(lambda row_id, dec: (row_id, dec[0], dec[1])))
        assert_that(got, equal_to(sorted(expected)))


def test_a_crowded_band_value_is_capped_and_never_drops_wrongly():
    """With 16-bit bands: 30 pictures and their copies share one band value, and each copy differs from
    its original by 2 bits in each other band: only that crowded band value can find them."""
    from clipcurate.pipeline.stages.dedup.near import NearDecisions

    r = random.Random(5)
    values = []
    for _ in range(30):
        base = (0xABCD << 48) | r.getrandbits(48)
        copy = base
        for band in (1, 2, 3):
            for bit in r.sample(range(16), 2):
                copy ^= 1 << (48 - 16 * band + bit)
        values += [base, copy]
    same = _thumb(random.Random(1)).tobytes()  # one picture: every close pair is confirmed
    summaries = [(f"id{i}", (v,), (0, i), f"row{i}", same, None) for i, v in enumerate(values)]
    every = _brute_force(summaries, 6)
    assert len(every) >= 30

    def run(config, check):
        with TestPipeline() as p:
            got = (p | beam.Create(range(len(summaries))) | beam.Map(lambda i: summaries[i]).with_output_types(typing.Any)
                   | NearDecisions(config) | beam.MapTuple(lambda row_id, dec: (row_id, dec[0], dec[1])))
            assert_that(got, check)

    run(NearDedupConfig(bands=4), equal_to(sorted(every)))  # the default cap leaves this band value whole

    def fewer_and_right(found):
        assert found and set(found) < every  # a capped band value finds fewer pairs, every one right

    run(NearDedupConfig(bands=4, max_group=20), fewer_and_right)


def test_a_crowded_entry_keeps_its_nearest_candidates():
    from clipcurate.pipeline.stages.dedup.near import band_pairs

    base = 0xABCD_0000_0000_0000
    entries = [("m", "a", base)] + [("m", f"b{i}", base ^ ((1 << (i % 6 + 1)) - 1)) for i in range(10)]
    every = set(band_pairs(entries, 6, 5000, 100))
    assert ("a", "b0") in every and len(every) == 55  # all within 6 bits of each other
    capped = set(band_pairs(entries, 6, 5000, 2))
    assert capped < every
    assert {("a", "b0"), ("a", "b6")} <= capped  # a's two nearest (1 bit away)


def _shape(label, fg, scale, cx, cy, bg=(245, 245, 245)) -> Image.Image:
    from clipcurate.pipeline.media import draw

    big = 600
    mask = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(mask)
    for poly, fill in draw._SHAPES[label]():
        d.polygon([((cx + scale * x) * big, (cy + scale * y) * big) for x, y in poly], fill=fill)
    img = Image.new("RGB", (200, 200), bg)
    img.paste(Image.new("RGB", (200, 200), fg), (0, 0), mask.resize((200, 200), Image.Resampling.LANCZOS))
    return img


def test_copies_are_confirmed_and_look_alikes_are_not():
    from PIL import ImageOps

    from clipcurate.filters.near_print import Rule, fingerprint, key_distance, similarity, thumbs

    def same(a: Image.Image, b: Image.Image, quality=85) -> bool:
        fa, fb = fingerprint(jpeg(a), a.size), fingerprint(jpeg(b, quality), b.size)
        return key_distance(fa.keys, fb.keys) <= 6 and bool(Rule().holds(similarity(thumbs([fa.thumb]), thumbs([fb.thumb])))[0])

    photo = scene(1)
    w, h = photo.size
    assert same(photo, photo, 30)                                  # re-encoded
    assert same(photo, photo.resize((160, 120)))                   # resized
    assert same(photo, photo.crop((26, 19, w - 26, h - 19)))       # cropped 8% a side
    assert same(photo, photo.crop((32, 24, w, h)))                 # cropped 10% at a corner
    assert same(photo, ImageOps.expand(photo, 16, fill=(0, 0, 0)))  # a border
    star = _shape("star", (220, 40, 40), 0.22, 0.5, 0.5)
    assert same(star, star, 40)
    assert not same(star, _shape("star", (40, 90, 220), 0.22, 0.5, 0.5))  # another colour
    assert not same(star, _shape("star", (220, 40, 40), 0.22, 0.26, 0.27))  # another place
    assert not same(star, _shape("star", (220, 40, 40), 0.1, 0.5, 0.5))  # another size
    assert not same(photo, scene(2))


def test_rows_whose_labels_differ_need_the_label_rule():
    from clipcurate.filters.near_print import Rule

    picture = scene(4)
    rows = [dict(row("a", jpeg(picture), "a photo of a circle.", (320, 240), 0), label="circle"),
            dict(row("b", jpeg(picture, 60), "a photo of a dot.", (320, 240), 1), label="circle"),
            dict(row("c", jpeg(picture, 70), "a photo of a disc.", (320, 240), 2), label="disc")]
    # a plain re-encode passes the default label rule: one row stays
    check_near_dedup(rows, ["a"], [("b", "a ("), ("c", "a (")])
    # a label rule nothing passes: the row with the other label stays too
    never = NearDedupConfig(label_rule=Rule(min_alike=1.0, min_centre=1.0, max_residual=1e-12))
    check_near_dedup(rows, ["a", "c"], [("b", "a (")], config=never)
