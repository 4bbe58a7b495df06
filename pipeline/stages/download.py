"""The download stage: fetch each pair's image and resize it, in a bounded thread pool.

Rows arrive in batches (``BatchElements``); each batch is fetched by a thread
pool that lives as long as the worker, and a semaphore bounds the images in
flight, so memory stays flat whatever the input size. Fetching and resizing
never raise: every row leaves as a sample with its image or as a reject with
its reason (see ``pipeline.fetch`` and ``pipeline.images``). Labelled rows
read their image from a local file inside the folder given on the command line.
"""
from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.metrics import Metrics

from clipcurate.filters.base import Drop, reject_row
from clipcurate.pipeline.net import failures
from clipcurate.pipeline.net.fetch import FetchConfig, Fetcher
from clipcurate.pipeline.files import FileTooLarge, OutsideRoot, read_under
from clipcurate.pipeline.media.images import ImageConfig, ImageProcessor
from clipcurate.pipeline.stages.base import REJECTS, RangeParts, Timer, internal_error
from clipcurate.pipeline.stages.download_units import fetch_key, load_unit, result_from, sample_row, save_unit, unit_path


@dataclass(frozen=True)
class DownloadConfig:
    fetch: FetchConfig = field(default_factory=FetchConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    threads: int = 32          # download threads per worker
    resize_slots: int = 0      # images decoded and resized at once per worker; 0: the CPUs it may use
    max_in_flight: int = 128   # images held in memory per worker, at most
    local_root: str | None = None  # labelled images are read only from inside this folder
    max_local_bytes: int = 50_000_000
    work_dir: str | None = None    # OUT/_work/download: finished work units, for resume and --retry-failed
    unit_rows: int = 500           # rows per work unit
    retry_failed: bool = False     # fetch again the rows of finished units that failed transiently


def is_transient(result: dict) -> bool:
    """Whether a download reject may succeed on another try (the fetcher's own definition)."""
    return failures.is_transient(result.get("reason"), result.get("error_message"))


def read_local(path: str, root: str | None, max_bytes: int) -> tuple[bytes | None, Drop | None]:
    """A labelled image's bytes, only from inside ``root`` (checked on the opened file)."""
    if root is None:
        return None, Drop("local_file_error", "local files are read only with --labelled")
    try:
        data = read_under(root, path, max_bytes)
    except OutsideRoot:
        return None, Drop("local_file_error", f"{path} lies outside {root}")
    except FileTooLarge as err:
        return None, Drop("too_large", f"{err.args[0]} bytes > {max_bytes}")
    except OSError as err:
        return None, Drop("local_file_error", f"{type(err).__name__}: {err}")
    if len(data) > max_bytes:  # grew while being read
        return None, Drop("too_large", f"more than {max_bytes} bytes")
    return data, None


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ImageFetcher:
    """Turns one row into (sample row, None) or (row, Drop): fetch or read, then resize.

    Many threads fetch at once (waiting on the network costs no CPU), but only ``resize_slots``
    decode and resize at a time: the resize is CPU work, and 16 threads resizing on 2 cores took
    ~15% more CPU and wall time an image than 2 to 4 (the Python parts of the resizer hand the GIL
    around among all of them)."""

    def __init__(self, config: DownloadConfig):
        self.config = config
        self.fetcher = Fetcher(config.fetch)
        self.processor = ImageProcessor(config.image)
        self.resizing = threading.BoundedSemaphore(config.resize_slots or cpus())

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
        with self.resizing:
            image, drop = self.processor(raw)
        if drop is not None:
            return row, drop
        return sample_row(row, image.data, {
            "sha256": image.sha256, "md5": hashlib.md5(raw).hexdigest(), "width": image.width,
            "height": image.height, "original_width": image.original_width,
            "original_height": image.original_height}), None

    def close(self):
        self.fetcher.close()


class _DownloadDoFn(beam.DoFn):
    """Downloads one work unit (a group of rows) at a time, reusing a finished unit's results."""

    def __init__(self, config: DownloadConfig):
        self.config = config

    def setup(self):
        self.fetch = ImageFetcher(self.config)
        self.pool = ThreadPoolExecutor(max_workers=self.config.threads, thread_name_prefix="clipcurate-dl")
        self.in_flight = threading.BoundedSemaphore(self.config.max_in_flight)
        self.timer = Timer("download")
        self.ok = Metrics.counter("clipcurate", "downloaded")
        self.failed = Metrics.counter("clipcurate", "download_failed")
        self.reused = Metrics.counter("clipcurate", "download_units_reused")

    def _one(self, row):
        try:
            out, drop = self.fetch(row)
        except Exception as err:  # noqa: BLE001 - one bad record never kills the run
            return False, internal_error(row, err)
        finally:
            self.in_flight.release()
        if drop is None:
            return True, out
        return False, reject_row(out, drop.reason, drop.message)

    def _download(self, rows):
        futures = []
        for row in rows:
            self.in_flight.acquire()
            futures.append(self.pool.submit(self._one, row))
        return [f.result() for f in futures]

    def process(self, item):
        unit, rows = item
        rows = sorted(rows, key=lambda r: r["key"])
        self.timer.count(len(rows))
        with self.timer:
            path = unit_path(self.config.work_dir, unit) if self.config.work_dir else None
            saved = load_unit(path) if path else {}
            results = [None if fetch_key(r) not in saved else result_from(saved[fetch_key(r)], r) for r in rows]
            again = [i for i, res in enumerate(results)
                     if res is None or (self.config.retry_failed and not res[0] and is_transient(res[1]))]
            if saved and len(again) < len(rows):
                self.reused.inc()
            if again:
                for i, new in zip(again, self._download([rows[i] for i in again])):
                    results[i] = new
                if path:
                    save_unit(path, rows, results)
        for ok, result in results:
            if ok:
                self.ok.inc()
                yield result
            else:
                self.failed.inc()
                yield beam.pvalue.TaggedOutput(REJECTS, result)

    def teardown(self):
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if getattr(self, "fetch", None) is not None:
            self.fetch.close()


class Download(beam.PTransform):
    """Rows -> (samples with their image, rejects), in work units of about ``unit_rows`` rows.

    The number of units follows from the number of rows, so the same input
    makes the same units; a unit whose results were saved by an earlier,
    killed run is read back instead of downloaded again.
    """

    def __init__(self, config: DownloadConfig):
        super().__init__()
        self.config = config

    def expand(self, rows):
        result = (
            rows
            | "Unit" >> RangeParts(self.config.unit_rows)
            | "GroupUnit" >> beam.GroupByKey()
            | "Fetch" >> beam.ParDo(_DownloadDoFn(self.config)).with_outputs(REJECTS, main="main")
        )
        return result.main, result[REJECTS]
