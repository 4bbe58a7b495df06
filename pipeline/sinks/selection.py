"""Write selection.json: the select stage's rule (method, threshold or per-image threshold quantiles),
from the one small record the stage emits; written once, atomically, by the sink and not by the stage."""
from __future__ import annotations

import json

import apache_beam as beam

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.files import atomic_write

SELECTION_NAME = "selection.json"


def write_selection(record: dict, out: str) -> str:
    path = fs.join(out, SELECTION_NAME)
    atomic_write(path, json.dumps(record, indent=1).encode())
    return path


class WriteSelection(beam.PTransform):
    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, record):
        return record | "Write" >> beam.Map(write_selection, self.output_dir)
