"""Write the rejects: one Parquet file per stage under OUT/rejects, rows in input order, each with its
stage, reason and message (the ``reject_schema``)."""
from __future__ import annotations


import apache_beam as beam

from clipcurate import schemas
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import write_table
from clipcurate.pipeline.sinks.arrow import to_table
from clipcurate.pipeline.sinks.shards import WriteConfig
from clipcurate.schemas.records import input_order


def rejects_dir(out: str) -> str:
    return fs.join(out, "rejects")


class _WriteRejects(beam.DoFn):
    def __init__(self, config: WriteConfig):
        self.config = config

    def process(self, item):
        stage, rows = item
        rows = sorted(rows, key=input_order)
        schema = schemas.reject_schema(list(self.config.extra_fields))
        path = fs.join(rejects_dir(self.config.output_dir), f"{stage}.parquet")
        write_table(path, to_table(rows, schema), self.config.row_group_rows)
        yield stage, len(rows)


class WriteRejects(beam.PTransform):
    def __init__(self, config: WriteConfig):
        super().__init__()
        self.config = config

    def expand(self, rejects):
        return (
            rejects
            | "ByStage" >> beam.Map(lambda r: (r.get("stage") or "internal", r))
            | "GroupStage" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteRejects(self.config))
        )
