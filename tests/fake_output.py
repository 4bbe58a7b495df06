"""Write a small but real clipcurate output folder (real JPEGs in real tars, real Parquet) for tests.

The layout follows the contract in /work/shared/design.md: shards/NNNNN.tar +
shards/NNNNN.parquet + shards/sizes.json, rejects/*.parquet, stats.json.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from clipcurate import schemas

EVIL_CAPTION = '<script>alert("owned")</script> a red <b>bold</b> fox & "friends"'
URL_CAPTION = "a blue kite, more at https://example.com/kites"
LANGUAGES = ("en", "en", "en", "de", "fr")
THRESHOLD = 0.25
USER_FIELD = pa.field("license", pa.string())

# (stage, reason, has thumbnail when thumbnails are written, language, similarity, textness, error)
REJECT_KINDS = (
    ("ingest", "malformed_row", False, None, None, None, "wrong field count"),
    ("dedup", "duplicate_url", False, "en", None, None, None),
    ("language", "language", False, "nl", None, None, None),
    ("download", "http_error", False, "en", None, None, "404 Not Found"),
    ("image", "image_too_small", True, "en", None, None, "image is 12x9"),
    ("select", "low_similarity", True, "en", "low", None, None),
    ("select", "text_heavy", True, "en", "high", 0.9, None),
)


@dataclass
class FakeRun:
    out: str
    kept_keys: list = field(default_factory=list)
    reject_counts: dict = field(default_factory=dict)   # reason -> rows
    thumbnail_reasons: tuple = ()                        # reasons whose rows carry thumbnails


def make_image(i: int, size=(200, 150)) -> Image.Image:
    """A colourful picture that differs per ``i``."""
    w, h = size
    im = Image.new("RGB", size, ((i * 53) % 256, (i * 97) % 256, (i * 31 + 80) % 256))
    draw = ImageDraw.Draw(im)
    draw.ellipse((w // 5, h // 5, w // 5 + h // 2, h // 5 + h // 2), fill=((i * 151) % 256, 240, 60))
    draw.rectangle((w // 2, h // 2, w - 10, h - 10), fill=(20, (i * 71) % 256, 200))
    return im


def jpeg_bytes(im: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _thumbnail(im: Image.Image) -> bytes:
    small = im.copy()
    small.thumbnail((96, 96))
    return jpeg_bytes(small, 70)


def _key(i: int, prefix: str) -> str:
    return hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:16]


def _base_row(i: int, key: str | None, caption: str) -> dict:
    return {"key": key, "url": f"http://127.0.0.1:9/img/{i}.jpg", "caption": caption, "raw_caption": caption,
            "source_file": "pairs.parquet", "source_row": i, "license": "cc-by"}


def _kept_row(i: int, caption: str) -> dict:
    size = (200 + 40 * (i % 7), 150 + 30 * (i % 5))
    row = _base_row(i, _key(i, "kept"), caption)
    row.update(language=LANGUAGES[i % len(LANGUAGES)], language_score=0.99, sha256=hashlib.sha256(b"%d" % i).hexdigest(),
               phash=f"{i:016x}", width=size[0], height=size[1], original_width=size[0] * 2,
               original_height=size[1] * 2, similarity=THRESHOLD + 0.01 + 0.01 * (i % 20), textness=0.05 * (i % 6))
    return row


def _write_shards(out: str, rows: list[dict], per_shard: int) -> None:
    os.makedirs(os.path.join(out, "shards"), exist_ok=True)
    schema = schemas.sample_schema([USER_FIELD])
    sizes = {}
    for shard, start in enumerate(range(0, len(rows), per_shard)):
        part = rows[start:start + per_shard]
        name = f"{shard:05d}"
        with tarfile.open(os.path.join(out, "shards", f"{name}.tar"), "w") as tar:
            for row in part:
                im = make_image(row["source_row"], (row["width"], row["height"]))
                for ext, data in (("jpg", jpeg_bytes(im)), ("txt", row["caption"].encode()),
                                  ("json", json.dumps(row).encode())):
                    info = tarfile.TarInfo(f"{row['key']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        pq.write_table(pa.Table.from_pylist(part, schema=schema), os.path.join(out, "shards", f"{name}.parquet"))
        sizes[f"{name}.tar"] = len(part)
    with open(os.path.join(out, "shards", "sizes.json"), "w") as f:
        json.dump(sizes, f)


def _reject_row(i: int, kind: tuple, thumbnails: bool) -> dict:
    stage, reason, has_thumb, language, sim, textness, error = kind
    row = _base_row(1000 + i, None if stage == "ingest" else _key(i, reason), f"rejected {reason} caption {i}")
    row.update(stage=stage, reason=reason, error_message=error, language=language)
    if stage in ("image", "select"):
        size = (12, 9) if reason == "image_too_small" else (300, 200)
        row.update(original_width=size[0], original_height=size[1])
        if sim == "low":
            row["similarity"] = THRESHOLD - 0.02 - 0.01 * (i % 15)
        elif sim == "high":
            row["similarity"] = THRESHOLD + 0.1
        row["textness"] = textness
        if thumbnails and has_thumb:
            row["thumbnail"] = _thumbnail(make_image(500 + i, (max(size[0], 40), max(size[1], 30))))
    return row


def _write_rejects(out: str, rows: list[dict], thumbnails: bool) -> None:
    """Early-stage rejects to one file without a thumbnail column, later ones to a file with it."""
    os.makedirs(os.path.join(out, "rejects"), exist_ok=True)
    early = [r for r in rows if r["stage"] not in ("image", "select")]
    late = [r for r in rows if r["stage"] in ("image", "select")]
    plain = pa.schema(schemas.SAMPLE_FIELDS + [f for f in schemas.REJECT_EXTRA_FIELDS if f.name != "thumbnail"]
                              + [USER_FIELD])
    pq.write_table(pa.Table.from_pylist(early, schema=plain), os.path.join(out, "rejects", "part-00000.parquet"))
    late_schema = schemas.reject_schema([USER_FIELD]) if thumbnails else plain
    pq.write_table(pa.Table.from_pylist(late, schema=late_schema), os.path.join(out, "rejects", "part-00001.parquet"))


def _stats(kept: int, reject_rows: list[dict]) -> dict:
    by_stage: dict = {}
    for r in reject_rows:
        by_stage.setdefault(r["stage"], {}).setdefault(r["reason"], 0)
        by_stage[r["stage"]][r["reason"]] += 1
    input_rows = kept + len(reject_rows)
    stages, funnel, remaining = [], [], input_rows
    for stage, reasons in by_stage.items():
        n = sum(reasons.values())
        stages.append({"stage": stage, "rejected": n, "reasons": reasons})
        funnel.append({"stage": stage, "rows_in": remaining, "rows_out": remaining - n})
        remaining -= n
    return {"input_rows": input_rows, "kept": kept, "rejected": len(reject_rows), "stages": stages, "funnel": funnel,
            "timings": {"total_s": 12.5, "stages": {"ingest": 0.4, "download": 8.1, "clip": 3.2}},
            "options": {"languages": ["en", "de", "fr"], "samples_per_shard": 16,
                        "select": {"method": "null_calibrated", "false_positive_rate": 0.01}},
            "selection": {"method": "null_calibrated", "threshold": THRESHOLD}}


def write_fake_output(out: str, kept: int = 40, per_shard: int = 16, rejects_per_kind: int = 3,
                      thumbnails: bool = True, stats: bool = True) -> FakeRun:
    """Write a fake output folder with ``kept`` samples and ``rejects_per_kind`` rows per reject kind."""
    os.makedirs(out, exist_ok=True)
    captions = [EVIL_CAPTION, URL_CAPTION] + [f"a photo of thing number {i}" for i in range(2, kept)]
    rows = [_kept_row(i, captions[i]) for i in range(kept)]
    if rows:
        _write_shards(out, rows, per_shard)
    reject_rows = [_reject_row(k * 100 + j, kind, thumbnails)
                   for k, kind in enumerate(REJECT_KINDS) for j in range(rejects_per_kind)]
    if reject_rows:
        _write_rejects(out, reject_rows, thumbnails)
    if stats:
        with open(os.path.join(out, "stats.json"), "w") as f:
            json.dump(_stats(kept, reject_rows), f)
    counts = {kind[1]: rejects_per_kind for kind in REJECT_KINDS} if rejects_per_kind else {}
    thumb_reasons = tuple(k[1] for k in REJECT_KINDS if k[2]) if thumbnails and rejects_per_kind else ()
    return FakeRun(out=out, kept_keys=[r["key"] for r in rows], reject_counts=counts, thumbnail_reasons=thumb_reasons)
