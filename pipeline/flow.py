"""The whole pipeline: one RunConfig in, one Beam pipeline of composite transforms out.

    ingest -> normalize -> dedup(url, caption) -> [url blocklist, language, prompts, caption quality on
      batches] -> download+resize -> dedup(image) -> [CLIP score -> select] -> write shards
    every stage's rejects -> write rejects

A metadata-only run (``until``) keeps the stages up to the one named and writes the surviving rows
as pairs/NNNNN.parquet instead of downloading anything.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.filters.balance import BalanceConfig
from clipcurate.filters.blocklist import BlocklistConfig
from clipcurate.filters.language import LanguageConfig
from clipcurate.filters.normalize import NormalizeConfig
from clipcurate.filters.prompts import PromptConfig
from clipcurate.filters.quality import QualityConfig
from clipcurate.pipeline import direct_runner
from clipcurate.pipeline.stages.base import PROGRESS
from clipcurate.pipeline.stages.captions import CaptionStages
from clipcurate.pipeline.stages.curate import Balance, caption_quality, hash_blocklist, image_quality, url_blocklist
from clipcurate.pipeline.stages.dedup.exact import DedupImages, DedupPairs, PairDedupConfig
from clipcurate.pipeline.stages.download import Download, DownloadConfig
from clipcurate.pipeline.sources.tables import Ingest, IngestConfig
from clipcurate.pipeline.stages.language import identify_language, write_uncertain
from clipcurate.pipeline.stages.dedup.near import NearDedupConfig
from clipcurate.pipeline.stages.normalize import Normalize
from clipcurate.pipeline.stages.prompts import make_prompts
from clipcurate.pipeline.sinks.input_count import WriteInputCount, read_input_count
from clipcurate.pipeline.sinks.pairs import WritePairs
from clipcurate.pipeline.sinks.rejects import WriteRejects
from clipcurate.pipeline.stages.dedup.images import ImageDecisions
from clipcurate.pipeline.sinks.selection import WriteSelection
from clipcurate.pipeline.sinks.shards import WriteConfig, WriteShards


@dataclass(frozen=True)
class RunConfig:
    write: WriteConfig
    ingest: IngestConfig | None = None          # tables of pairs
    input_schema: pa.Schema | None = None       # their unified schema, checked up front
    labelled: object | None = None              # labelled.LabelledConfig for --labelled (read by the pipeline)
    crawl: object | None = None                 # crawl.CrawlConfig for --seeds
    warc: object | None = None                  # warc.WarcConfig for --warc
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    pair_dedup: PairDedupConfig = field(default_factory=PairDedupConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    blocklist: BlocklistConfig = field(default_factory=BlocklistConfig)
    near_dedup: NearDedupConfig | None = field(default_factory=NearDedupConfig)
    score: object | None = None                 # score.ScoreConfig when --clip is given
    semantic_dedup: object | None = None        # semantic_dedup.SemanticDedupConfig (needs --clip)
    select: object | None = None                # select.SelectConfig when --clip is given
    balance: BalanceConfig | None = None
    until: str | None = None                    # a metadata-only run: stop after this stage (UNTIL), write pairs/
    expected_rows: int | None = None            # the launcher's estimate of the input rows (from file sizes)


# --until STAGE: the stage labels it keeps, and the fields stage (schemas.records) its rows have
UNTIL = {"normalize": ("Normalize",), "dedup": ("Normalize", "DedupPairs", "BlockUrls"),
         "language": ("Normalize", "DedupPairs", "BlockUrls", "Language"),
         "prompts": ("Normalize", "DedupPairs", "BlockUrls", "Language", "Prompts", "CaptionQuality")}
UNTIL_FIELDS = {"normalize": "normalize", "dedup": "normalize", "language": "language", "prompts": "prompts"}


def build(p: beam.Pipeline, config: RunConfig):
    """Add every stage to ``p``; returns the PCollections of shard sizes and reject counts."""
    rejects = []
    sources = []
    if config.ingest is not None:
        batches, bad = p | "Ingest" >> Ingest(config.ingest, config.input_schema)
        sources.append(batches)
        rejects.append(bad)
    if config.crawl is not None:
        from clipcurate.pipeline.sources.crawl import Crawl

        sources.append(p | "Crawl" >> Crawl(config.crawl))
    if config.warc is not None:
        from clipcurate.pipeline.sources.warc import ReadWarc

        batches, bad = p | "ReadWarc" >> ReadWarc(config.warc)
        sources.append(batches)
        rejects.append(bad)
    if config.labelled is not None:
        from clipcurate.pipeline.sources.labelled import ReadLabelled

        sources.append(p | "Labelled" >> ReadLabelled(config.labelled))
    raw = sources[0] if len(sources) == 1 else tuple(sources) | "Sources" >> beam.Flatten()
    # the input count for stats.json, from the sources themselves (not from metrics, not from the outputs)
    _ = tuple(sources + rejects) | "CountInput" >> WriteInputCount(config.write.output_dir)

    # per-row stages, then the caption steps on batches (one stage, ``captions``), then the image stages
    first = [("Normalize", Normalize(config.normalize)), ("DedupPairs", DedupPairs(config.pair_dedup))]
    steps = [url_blocklist(config.blocklist)] if config.blocklist.url_files else []
    steps += [identify_language(config.language), make_prompts(config.prompts)]
    if config.quality.checks_captions:
        steps.append(caption_quality(config.quality))
    checks = []
    if config.blocklist.hash_files:
        checks.append(("BlockHashes", hash_blocklist(config.blocklist)))
    if config.quality.checks_images:
        checks.append(("ImageQuality", image_quality(config.quality)))
    stages = [("Download", Download(config.download))]
    if config.near_dedup is not None:  # exact dedup, the checks and near dedup with one shuffle of the images
        stages.append(("ImageDecisions", ImageDecisions(tuple(check.as_check() for _, check in checks),
                                                        config.near_dedup)))
    else:
        stages += [("DedupImages", DedupImages())] + checks
    if config.score is not None:
        from clipcurate.pipeline.stages.score import Score
        from clipcurate.pipeline.stages.select import Select

        stages.append(("Score", Score(config.score)))
        if config.semantic_dedup is not None:
            from clipcurate.pipeline.stages.dedup.semantic import SemanticDedup

            stages.append(("SemanticDedup", SemanticDedup(config.semantic_dedup)))
        stages.append(("Select", Select(config.select)))
    if config.balance is not None:
        stages.append(("Balance", Balance(config.balance)))

    if config.until is not None:
        first = [(label, stage) for label, stage in first if label in UNTIL[config.until]]
        steps = [step for step in steps if step.label in UNTIL[config.until]]
        stages = []
    rows = raw
    for label, stage in first:
        rows, bad = rows | label >> stage
        rejects.append(bad)
    out_dir = config.write.output_dir
    counted = any(step.count is not None for step in steps)  # the language step, with languages asked for
    batches, bad = rows | "Captions" >> CaptionStages(
        steps, on_count=(lambda n: write_uncertain(n, out_dir)) if counted else None)
    rejects.append(bad)
    rows = batches | "Unbatch" >> beam.FlatMap(lambda batch: batch) if stages else batches
    for label, stage in stages:
        rows, bad, *rule = rows | label >> stage  # only Select has a third output: its rule
        rejects.append(bad)
        if rule:
            _ = rule[0] | "WriteSelection" >> WriteSelection(config.write.output_dir)

    if config.until is not None:
        sizes = batches | "WritePairs" >> WritePairs(config.write.output_dir, UNTIL_FIELDS[config.until],
                                                     config.write.extra_fields, expected_rows=config.expected_rows)
    else:
        sizes = rows | "WriteShards" >> WriteShards(config.write)
    counts = tuple(rejects) | "WriteRejects" >> WriteRejects(config.write)
    return sizes, counts


def stage_times(result) -> dict:
    from apache_beam.metrics.metric import MetricsFilter

    out = {}
    try:
        found = result.metrics().query(MetricsFilter().with_namespace("clipcurate"))
    except (NotImplementedError, AttributeError):
        return out
    for d in found.get("distributions", []):
        name = d.key.metric.name
        if name.startswith("ms_") and d.committed is not None:
            out[name[3:]] = round(out.get(name[3:], 0.0) + d.committed.sum / 1000.0, 3)
    return out


def run(config: RunConfig, options: PipelineOptions) -> dict:
    """Run the pipeline to the end; returns what stats.json needs from the run itself. The output
    folders exist already (the CLI's ``start_staging``); every writer makes its file's folder too."""
    start = time.time()
    runner = direct_runner.runner_for(options)  # the DirectRunner without its Prism try, else None
    p = beam.Pipeline(runner=runner, options=options)
    build(p, config)
    try:
        warm = ("clipcurate.pipeline.imports:load_for_download",) if config.until is None else ()
        with direct_runner.worker_env(warm) if runner is not None else contextlib.nullcontext():
            result = p.run()
            result.wait_until_finish()
    finally:
        PROGRESS.stop()  # this process's progress line (the in-memory runner's workers are threads of it)
    info = {"input_rows": read_input_count(config.write.output_dir), "total_s": round(time.time() - start, 3), "stages": stage_times(result)}
    if config.language.languages is not None:  # rows the language stage kept on doubt
        from clipcurate.pipeline.stages.language import read_uncertain_count

        info["language_uncertain"] = read_uncertain_count(config.write.output_dir)
    return info
