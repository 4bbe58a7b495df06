"""The download stage: fetch each pair's image and resize it, in a bounded thread pool.

Rows arrive in batches (``BatchElements``); each batch is fetched by a thread
pool that lives as long as the worker, and a semaphore bounds the images in
flight, so memory stays flat whatever the input size. Fetching and resizing
never raise: every row leaves as a sample with its image or as a reject with
its reason (see ``pipeline.fetch`` and ``pipeline.images``). Labelled rows
read their image from a local file inside the folder given on the command line.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.filters.base import Drop, reject_row
from clipcurate.pipeline.fetch import FetchConfig, Fetcher
from clipcurate.pipeline.images import ImageConfig, ImageProcessor
from clipcurate.pipeline.stage import REJECTS, Timer, internal_error


@dataclass(frozen=True)
class DownloadConfig:
    fetch: FetchConfig = field(default_factory=FetchConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    threads: int = 32          # download threads per worker
    max_in_flight: int = 128   # images held in memory per worker, at most
    local_root: str | None = None  # labelled images are read only from inside this folder
    max_local_bytes: int = 50_000_000


def read_local(path: str, root: str | None, max_bytes: int) -> tuple[bytes | None, Drop | None]:
    """A labelled image's bytes, only from inside ``root``."""
    if root is None:
        return None, Drop("local_file_error", "local files are read only with --labelled")
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        return None, Drop("local_file_error", f"{path} lies outside {root}")
    try:
        size = os.path.getsize(real)
        if size > max_bytes:
            return None, Drop("too_large", f"{size} bytes > {max_bytes}")
        with open(real, "rb") as f:
            return f.read(), None
    except OSError as err:
        return None, Drop("local_file_error", f"{type(err).__name__}: {err}")


class ImageFetcher:
    """Turns one row into (sample row, None) or (row, Drop): fetch or read, then resize."""

    def __init__(self, config: DownloadConfig):
        self.config = config
        self.fetcher = Fetcher(config.fetch)
        self.processor = ImageProcessor(config.image)

    def __call__(self, row: dict) -> tuple[dict, Drop | None]:
        if row.get("invalid_path"):
            return row, Drop("local_file_error", f"{row.get('url')} lies outside the labelled folder")
        if row.get("local_path"):
            raw, drop = read_local(row["local_path"], self.config.local_root, self.config.max_local_bytes)
        else:
            result = self.fetcher.fetch(row["url"])
            raw, drop = result.body, result.drop
        if drop is not None:
            return row, drop
        image, drop = self.processor(raw)
        if drop is not None:
            return row, drop
        out = {k: v for k, v in row.items() if k not in ("local_path", "invalid_path")}
        out.update(image=image.data, sha256=image.sha256, width=image.width, height=image.height,
                   original_width=image.original_width, original_height=image.original_height)
        return out, None

    def close(self):
        self.fetcher.close()


class _DownloadDoFn(beam.DoFn):
    def __init__(self, config: DownloadConfig):
        self.config = config

    def setup(self):
        self.fetch = ImageFetcher(self.config)
        self.pool = ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix="clipcurate-dl")
        self.in_flight = threading.BoundedSemaphore(self.config.max_in_flight)
        self.timer = Timer("download")
        self.ok = Metrics.counter("clipcurate", "downloaded")
        self.failed = Metrics.counter("clipcurate", "download_failed")

    def _one(self, row):
        try:
            return self.fetch(row)
        except Exception as err:  # noqa: BLE001 - one bad record never kills the run
            return row, err

    def process(self, rows):
        with self.timer:
            futures = []
            for row in rows:
                self.in_flight.acquire()
                future = self.pool.submit(self._one, row)
                future.add_done_callback(lambda _: self.in_flight.release())
                futures.append(future)
            for future in futures:
                out, drop = future.result()
                if drop is None:
                    self.ok.inc()
                    yield out
                elif isinstance(drop, BaseException):
                    self.failed.inc()
                    yield beam.pvalue.TaggedOutput(REJECTS, internal_error(out, drop))
                else:
                    self.failed.inc()
                    yield beam.pvalue.TaggedOutput(REJECTS, reject_row(out, drop.reason, drop.message))

    def teardown(self):
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if getattr(self, "fetch", None) is not None:
            self.fetch.close()


class Download(beam.PTransform):
    def __init__(self, config: DownloadConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        result = (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=self.config.max_in_flight)
            | "Fetch" >> beam.ParDo(_DownloadDoFn(self.config)).with_outputs(REJECTS, main="main")
        )
        return result.main, result[REJECTS]
