"""Write the kept samples: WebDataset tar shards with a Parquet file each (+ embeddings), sizes.json;
or (``output_format`` parquet/both) Parquet shards that hold the images too, as Hugging Face
datasets' Image feature.

Shard contents are deterministic and independent of the runner's bundling:
a sample's global rank (its position in key order) decides its shard, so every
shard but the last holds exactly ``samples_per_shard`` samples. The ranks come
from the keys alone (``batches.batch_starts``: key-range buckets, each sorted):
the first key of each shard is collected (one key per shard, a small side
input) and each sample finds its shard by bisecting those. So the image bytes are
shuffled once, grouped by shard, and never by bucket. Every file is
written under a temporary name and renamed into place, so a killed run never
leaves a half shard that looks whole.
"""
from __future__ import annotations

import bisect
import io
import json
import tarfile
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import atomic_write, write_table
from clipcurate.pipeline.sinks.arrow import to_table
from clipcurate.pipeline.sinks.batches import batch_starts
from clipcurate.pipeline.stages.base import Timer


@dataclass(frozen=True)
class WriteConfig:
    output_dir: str
    samples_per_shard: int = 5000
    extra_fields: tuple = ()  # user columns: tuple of pyarrow fields
    row_group_rows: int = 100_000
    reject_rows_per_file: int = 200_000  # a stage's rejects are cut into files of about this many rows
    image_ext: str = "jpg"  # the image member's extension: the encode format (jpg, png, webp)
    output_format: str = "webdataset"  # webdataset (tar + metadata Parquet), parquet (images in it), both
    image_row_group_rows: int = 1000  # row groups of Parquet shards with images: ~20 MB at 256 px, for random access
    batch_layout: object | None = None  # sinks.batches.BatchLayoutConfig: TOnICS order instead of key order

    def __post_init__(self):
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, not {self.output_format!r}")

    @property
    def tars(self) -> bool:
        return self.output_format in ("webdataset", "both")

    @property
    def parquet_images(self) -> bool:
        return self.output_format in ("parquet", "both")


OUTPUT_FORMATS = ("webdataset", "parquet", "both")
BATCH_FIELD = "_batch"  # with a batch layout: the sample's batch ordinal, the first sort key in its shard (not written)
# Hugging Face datasets' Image feature: a struct of the encoded bytes and a file name, declared in the
# schema's "huggingface" metadata so that load_dataset("parquet", ...) decodes it to PIL images
IMAGE_STRUCT = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
HF_METADATA = {b"huggingface": json.dumps({"info": {"features": {"image": {"_type": "Image"}}}}).encode()}


def with_images(table: pa.Table, samples: list[dict], ext: str) -> pa.Table:
    """The metadata table with an ``image`` column (bytes, KEY.ext) first, as datasets' Image feature."""
    images = pa.array([{"bytes": s["image"], "path": f"{s['key']}.{ext}"} for s in samples], IMAGE_STRUCT)
    table = table.add_column(0, pa.field("image", IMAGE_STRUCT), images)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **HF_METADATA})


def shards_dir(out: str) -> str:
    return fs.join(out, "shards")


def _json_value(value):
    if isinstance(value, bytes):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def sample_metadata(sample: dict, names: list[str]) -> dict:
    return {n: sample.get(n) for n in names}


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shard(out: str, shard: int, samples: list[dict], config: WriteConfig) -> tuple[str, int]:
    """Write NNNNN.parquet (with the images for parquet/both), NNNNN.tar (webdataset/both) and the
    embeddings .npy when scored; returns (the shard's name in sizes.json: its tar, else its parquet, count)."""
    samples = sorted(samples, key=lambda s: (s.get(BATCH_FIELD, 0), s["key"]))
    schema = schemas.sample_schema(list(config.extra_fields))
    names = schema.names
    base = fs.join(shards_dir(out), f"{shard:05d}")
    table = to_table(samples, schema)
    if config.parquet_images:
        write_table(base + ".parquet", with_images(table, samples, config.image_ext), config.image_row_group_rows)
    else:
        write_table(base + ".parquet", table, config.row_group_rows)
    for emb in ("image_embedding", "text_embedding"):
        if samples and samples[0].get(emb) is not None:
            buf = io.BytesIO()
            np.save(buf, np.stack([np.asarray(s[emb], dtype=np.float16) for s in samples]))
            atomic_write(f"{base}.{emb}.npy", buf.getvalue())
    if not config.tars:
        return f"{shard:05d}.parquet", len(samples)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for s in samples:
            meta = json.dumps(sample_metadata(s, names), ensure_ascii=False, sort_keys=True, default=_json_value)
            _tar_member(tar, f"{s['key']}.{config.image_ext}", s["image"])
            _tar_member(tar, f"{s['key']}.txt", s["caption"].encode("utf-8"))
            _tar_member(tar, f"{s['key']}.json", meta.encode("utf-8"))
    atomic_write(base + ".tar", buf.getvalue())
    return f"{shard:05d}.tar", len(samples)


class _WriteShard(beam.DoFn):
    def __init__(self, config: WriteConfig):
        self.config = config

    def setup(self):
        self.timer = Timer("write")

    def process(self, item):
        shard, samples = item
        samples = list(samples)
        self.timer.count(len(samples))
        with self.timer:
            result = write_shard(self.config.output_dir, shard, samples, self.config)
        yield result


def _write_sizes(sizes: list, out: str) -> int:
    data = {name: n for name, n in sorted(sizes)}
    atomic_write(fs.join(shards_dir(out), "sizes.json"), json.dumps(data, indent=1).encode())
    return len(data)


class WriteShards(beam.PTransform):
    def __init__(self, config: WriteConfig):
        super().__init__()
        self.config = config

    def expand(self, samples):
        n = self.config.samples_per_shard
        if self.config.batch_layout is not None:
            return self._by_batches(samples)
        # the first key of every shard: the batch starts of one group holding every sample (one key a shard)
        keys = samples | "Keys" >> beam.Map(lambda s: ("", s["key"]))
        starts = beam.pvalue.AsDict(batch_starts(keys, n, "Shard"))
        sizes = (
            samples
            | "Shard" >> beam.Map(lambda s, first: (bisect.bisect_right(first[""], s["key"]) - 1, s), starts)
            | "GroupShard" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteShard(self.config))
        )
        return (sizes | "AllSizes" >> beam.combiners.ToList()
                | "SizesJson" >> beam.Map(_write_sizes, self.config.output_dir))

    def _by_batches(self, samples):
        """TOnICS order: samples_per_shard / B whole batches a shard, in batch order (sinks.batches)."""
        from clipcurate.pipeline.sinks.batches import OntologyLayout

        per_shard = self.config.samples_per_shard // self.config.batch_layout.batch_size
        sizes = (samples
                 | "Layout" >> OntologyLayout(self.config.batch_layout)
                 | "Shard" >> beam.MapTuple(lambda ordinal, s: (ordinal // per_shard, dict(s, **{BATCH_FIELD: ordinal})))
                 | "GroupShard" >> beam.GroupByKey()
                 | "Write" >> beam.ParDo(_WriteShard(self.config)))
        return (sizes | "AllSizes" >> beam.combiners.ToList()
                | "SizesJson" >> beam.Map(_write_sizes, self.config.output_dir))
