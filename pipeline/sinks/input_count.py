"""Count the input rows inside the pipeline and write the number beside the outputs (_input_rows.json).

stats.json's "every row accounted for" needs an input count that does not come from the outputs.
Beam metrics give one on some runners only (the dask runner has none), so the sources' elements are
counted here with a combiner: a record batch counts its rows, any other element (a crawled pair, a
labelled row, a malformed-row reject) counts one. The launcher reads the file after the run and
removes it (``read_input_count``); it is never published."""
from __future__ import annotations


import apache_beam as beam
import pyarrow as pa

from clipcurate.pipeline import files as fs

COUNT_NAME = "_input_rows.json"


def rows_in(item) -> int:
    return item.num_rows if isinstance(item, (pa.RecordBatch, pa.Table)) else 1


def write_count(total: int, out: str) -> str:
    return fs.write_run_count(out, COUNT_NAME, "input_rows", total)


def read_input_count(out: str) -> int | None:
    """The count the run wrote, or None when it wrote none; the file is removed either way."""
    return fs.take_run_count(out, COUNT_NAME, "input_rows")


class WriteInputCount(beam.PTransform):
    """The sources' outputs (a tuple of PCollections: elements and source rejects) -> _input_rows.json in
    ``output_dir``. Each source's elements become their row counts where they are made; only the
    counts are flattened, never the elements (a runner may hold a flatten's input whole)."""

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, sources):
        counts = tuple(pcoll | f"Rows{i}" >> beam.Map(rows_in) for i, pcoll in enumerate(sources))
        return (counts
                | "Counts" >> beam.Flatten()
                | "Sum" >> beam.CombineGlobally(sum)
                | "Write" >> beam.Map(write_count, self.output_dir))
