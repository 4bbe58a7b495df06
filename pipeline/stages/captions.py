"""The caption stages on batches of rows: URL blocklist, language, prompts, caption quality.

Between pair dedup and download every step looks at one row at a time and needs no shuffle, so the
steps run one after the other inside one DoFn, on batches (the lists that pair dedup or normalize
emit, cut to at most ``batch_rows``): one Python call per
step per batch, not per row, and one element per batch between the steps. Each step keeps its own
stage name (rejects, timers, progress) and reason strings; the stage's main output is batches (lists
of rows), which the pairs writer takes as they are and the download stage after an unbatching step.
A step whose batch call raises is run again row by row, so only the bad row becomes an
``internal_error`` reject. ``--until dedup|language|prompts`` keeps the steps up to that stage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import apache_beam as beam

from clipcurate.filters.base import reject_row
from clipcurate.pipeline.stages.base import REJECTS, Timer, internal_error

COUNTS = "counts"  # tagged output: one number per batch, summed by the stage's counter


@dataclass(frozen=True)
class CaptionStep:
    label: str   # its place in the flow, for --until ("BlockUrls", "Language", "Prompts", "CaptionQuality")
    stage: str   # stage name of timers and progress
    make: Callable[[], Callable[[list], list]]  # once per worker: rows -> [(row, Drop | None)]
    count: Optional[Callable[[dict], bool]] = None  # rows kept by this step that the stage counts


def per_row(make_check: Callable[[], Callable[[dict], tuple]]) -> Callable[[], Callable[[list], list]]:
    """A step from a per-row function ``fn(row) -> (row, Drop | None)``."""
    def make():
        fn = make_check()
        return lambda rows: [fn(row) for row in rows]
    return make


class _Steps(beam.DoFn):
    def __init__(self, steps: tuple):
        self.steps = steps

    def setup(self):
        self.fns = [(step, step.make(), Timer(step.stage)) for step in self.steps]

    def process(self, rows):
        for step, fn, timer in self.fns:
            timer.count(len(rows))
            with timer:
                try:
                    results = fn(rows)
                except Exception:  # noqa: BLE001 - again one by one, so only the bad record fails
                    results = []
                    for row in rows:
                        try:
                            results.extend(fn([row]))
                        except Exception as err:  # noqa: BLE001
                            results.append((row, err))
            kept = []
            for out, drop in results:
                if drop is None:
                    kept.append(out)
                elif isinstance(drop, BaseException):
                    yield beam.pvalue.TaggedOutput(REJECTS, internal_error(out, drop))
                else:
                    yield beam.pvalue.TaggedOutput(REJECTS, reject_row(out, drop.reason, drop.message))
            if step.count is not None:
                yield beam.pvalue.TaggedOutput(COUNTS, sum(1 for row in kept if step.count(row)))
            rows = kept
            if not rows:
                return
        yield rows


class CaptionStages(beam.PTransform):
    """batches of rows -> (batches of kept rows, rejects). With ``on_count``, the numbers the steps count
    (``CaptionStep.count``) are summed by a combiner and handed to ``on_count(total)`` once."""

    def __init__(self, steps: list[CaptionStep], on_count: Optional[Callable[[int], object]] = None,
                 batch_rows: int = 2048):
        super().__init__()
        self.steps = tuple(steps)
        self.on_count = on_count
        self.batch_rows = batch_rows

    def expand(self, batches):
        n = self.batch_rows
        batches = batches | "Batch" >> beam.FlatMap(lambda rows: (rows[i:i + n] for i in range(0, len(rows), n)))
        result = batches | "Steps" >> beam.ParDo(_Steps(self.steps)).with_outputs(REJECTS, COUNTS, main="main")
        if self.on_count is not None:
            _ = (result[COUNTS] | "Sum" >> beam.CombineGlobally(sum)
                 | "Counted" >> beam.Map(self.on_count))
        return result.main, result[REJECTS]
