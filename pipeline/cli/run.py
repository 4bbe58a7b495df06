"""``clipcurate run``: check every option up front, then run the pipeline, then write stats and report."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import uuid

from clipcurate.pipeline.cli import UsageError

ACCEPTS_EXTRA_ARGS = True  # any other Beam option (--runner DataflowRunner --project ...) is passed through

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")


def add_arguments(parser):
    io_ = parser.add_argument_group("input and output")
    io_.add_argument("--input", nargs="+", default=[], metavar="FILE_OR_GLOB",
                     help="tables of pairs: .parquet, .csv, .tsv, .jsonl (optionally .gz); globs and folders too")
    io_.add_argument("--seeds", metavar="FILE", help="crawl these seed pages (one URL a line) as the first stage")
    io_.add_argument("--max-depth", type=int, default=2, help="with --seeds: links followed from a seed, at most")
    io_.add_argument("--max-pages", type=int, default=1000, help="with --seeds: pages fetched per site, at most")
    io_.add_argument("--warc", nargs="+", default=[], metavar="FILE_OR_GLOB",
                     help="Common Crawl WARC (HTML responses) or WAT (metadata) files, gzip'd or not")
    io_.add_argument("--labelled", metavar="DIR", help="an ImageFolder tree or a table with a label column; labels become prompts")
    io_.add_argument("--output", metavar="OUT", help="output folder (running again on the same OUT resumes)")
    io_.add_argument("--retry-failed", metavar="OUT",
                     help="download again the rows of OUT that failed with transient errors (timeouts, 5xx, "
                          "connection errors), with OUT's options, and merge them into OUT")
    io_.add_argument("--url-col", default="url")
    io_.add_argument("--caption-col", default="caption")
    io_.add_argument("--input-format", choices=("parquet", "csv", "tsv", "jsonl"), help="override the format told by the file extension")
    io_.add_argument("--samples-per-shard", type=int, default=5000)
    io_.add_argument("--work-unit-rows", type=int, default=500,
                     help="rows per download work unit: the granularity of resuming a killed run")

    text = parser.add_argument_group("captions")
    text.add_argument("--max-caption-length", type=int, default=1000, help="characters; longer captions are rejected")
    text.add_argument("--languages", help="comma-separated ISO codes to keep, e.g. en,de (default: keep all, fill the columns)")
    text.add_argument("--prompt-template", default=None, help='template for label-only captions (default "a photo of a {label}.")')
    text.add_argument("--label-domain", default=None, help='domain hint: "a photo of a {label}, a type of DOMAIN."')
    text.add_argument("--no-prompts", action="store_true", help="leave label-only captions as they are")

    dl = parser.add_argument_group("download")
    dl.add_argument("--image-size", type=int, default=256)
    dl.add_argument("--resize-mode", choices=RESIZE_MODES, default="border")
    dl.add_argument("--min-image-size", type=int, default=32, help="minimum shorter side of the original image, pixels")
    dl.add_argument("--max-image-pixels", type=int, default=80_000_000, help="declared pixel count above which an image is a decompression bomb")
    dl.add_argument("--timeout", type=float, default=10.0, help="total deadline per request, seconds")
    dl.add_argument("--retries", type=int, default=1, help="extra attempts for transient errors")
    dl.add_argument("--max-bytes", type=int, default=20_000_000, help="byte cap on a response body")
    dl.add_argument("--threads", type=int, default=32, help="download threads per worker")
    dl.add_argument("--per-host-concurrency", type=int, default=4)
    dl.add_argument("--allow-private-network", action="store_true",
                    help="allow requests to loopback/private/link-local addresses (tests, intranets)")
    dl.add_argument("--user-agent", default=None, help="User-Agent header (default names the project and a URL)")
    dl.add_argument("--respect-robots-txt", action="store_true", help="fetch robots.txt once per host and obey it for images")

    cur = parser.add_argument_group("curation filters")
    cur.add_argument("--block-urls", nargs="+", default=[], metavar="FILE",
                     help="URL blocklists: one URL a line (# comments), or .parquet/.csv with a url column; checked before download")
    cur.add_argument("--block-hashes", nargs="+", default=[], metavar="FILE",
                     help="sha256 (64 hex) or md5 (32 hex) digests of downloaded image bytes, one a line, or .parquet/.csv "
                          "with a hash, sha256 or md5 column")
    cur.add_argument("--min-words", type=int, default=None, help="minimum caption words (whitespace words)")
    cur.add_argument("--max-words", type=int, default=None, help="maximum caption words")
    cur.add_argument("--min-short-side", type=int, default=None, help="minimum shorter side of the original image (DataComp: 200)")
    cur.add_argument("--max-aspect-ratio", type=float, default=None, help="maximum longer/shorter side of the original image (DataComp: 3.0)")
    cur.add_argument("--near-dedup-distance", type=int, default=6,
                     help="drop images whose perceptual hash is within D bits of a better-ranked image (default 6)")
    cur.add_argument("--near-dedup-bands", type=int, default=8, help="hash bands for near-dup bucketing (> distance)")
    cur.add_argument("--no-near-dedup", action="store_true", help="skip near-duplicate image removal")
    cur.add_argument("--semantic-dedup-threshold", type=float, default=None,
                     help="with --clip: drop images whose CLIP embedding has cosine > T with a better-ranked one (SemDeDup)")
    cur.add_argument("--semantic-dedup-cluster-size", type=int, default=1000)
    cur.add_argument("--balance-labels", metavar="FILE", help="MetaCLIP-style balancing: entries one a line, matched in captions")
    cur.add_argument("--balance-cap", type=int, default=None, help="at most about T pairs per matched entry")
    cur.add_argument("--balance-drop-unmatched", action="store_true", help="also drop pairs that match no entry")

    clip = parser.add_argument_group("CLIP scoring and selection")
    clip.add_argument("--clip", metavar="MODEL", help="MODEL_DIR from clipcurate bootstrap, open_clip:ARCH:/path/weights.pt, or hf:/path/to/clip_dir")
    clip.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    clip.add_argument("--clip-batch-size", type=int, default=64)
    sel = clip.add_mutually_exclusive_group()
    sel.add_argument("--min-similarity", type=float, help="keep pairs with cosine similarity >= X")
    sel.add_argument("--keep-fraction", type=float, help="keep the top F of pairs by similarity (a global quantile)")
    clip.add_argument("--false-match-rate", type=float, default=0.01,
                      help="default selection: keep pairs above the (1 - rate) quantile of mismatched-pair similarities")
    clip.add_argument("--max-textness", type=float, default=None,
                      help="drop images whose textness (0..1, a probe on the image embedding) is above this")
    clip.add_argument("--textness-bias", type=float, default=0.0,
                      help="add S times the textness direction to text embeddings before scoring (< 0 pushes away "
                           "from images that only show the caption's words)")

    beam_ = parser.add_argument_group("Beam")
    beam_.add_argument("--runner", default="DirectRunner", help="DirectRunner (default), DataflowRunner, FlinkRunner, SparkRunner, ...")
    beam_.add_argument("--workers", type=int, default=1, help="worker processes for the DirectRunner")


def _positive(name, value, allow_zero=False):
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def check_output(out: str) -> None:
    """Create OUT and prove it is writable, before any work."""
    try:
        os.makedirs(os.path.join(out, "shards"), exist_ok=True)
        os.makedirs(os.path.join(out, "rejects"), exist_ok=True)
        probe = os.path.join(out, f".probe-{uuid.uuid4().hex[:8]}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    except OSError as err:
        raise UsageError(f"output folder {out!r} is not writable: {err.strerror or err}") from None


def clear_previous(out: str) -> None:
    """Remove a previous run's shards and rejects (only files this tool writes)."""
    patterns = ["shards/[0-9][0-9][0-9][0-9][0-9].*", "shards/sizes.json", "shards/*.tmp-*",
                "rejects/*.parquet", "rejects/*.tmp-*", "stats.json", "report.html"]
    for pattern in patterns:
        for path in glob.glob(os.path.join(out, pattern)):
            os.remove(path)


def unknown_beam_args(extra: list) -> list:
    """Flags that neither clipcurate nor any Beam runner knows (a typo would otherwise be dropped silently)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    parser = _BeamArgumentParser(add_help=False, allow_abbrev=False)
    for cls in dict.fromkeys(subclasses(PipelineOptions)):
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(extra))
    return [u for u in unknown if u.startswith("-")]


def beam_options(args):
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [f"--runner={args.runner}"] + list(args.extra_args)
    if args.runner in ("DirectRunner", "FnApiRunner") or args.runner.endswith(".DirectRunner"):
        flags.append(f"--direct_num_workers={args.workers}")
        flags.append("--direct_running_mode=" + ("multi_processing" if args.workers > 1 else "in_memory"))
    return PipelineOptions(flags)


def make_config(args):
    """Every option checked and turned into the stages' configs; UsageError on the first problem."""
    from clipcurate.filters.language import LanguageConfig
    from clipcurate.filters.normalize import NormalizeConfig
    from clipcurate.filters.prompts import DEFAULT_TEMPLATE, PromptConfig
    from clipcurate.pipeline.stages.download import DownloadConfig
    from clipcurate.pipeline.net.fetch import FetchConfig
    from clipcurate.pipeline.media.images import ImageConfig
    from clipcurate.pipeline.sources.labelled import labelled_root
    from clipcurate.pipeline.sources.tables import IngestConfig, InputError, check_input, expand_inputs
    from clipcurate.pipeline.flow import RunConfig
    from clipcurate import schemas
    from clipcurate.pipeline.sinks.shards import WriteConfig

    unknown = unknown_beam_args(args.extra_args)
    if unknown:
        raise UsageError(f"unrecognized option {unknown[0]} (not a clipcurate run option nor a Beam pipeline option)")
    if not (args.input or args.labelled or args.seeds or args.warc):
        raise UsageError("give --input FILE_OR_GLOB, --labelled DIR, --seeds FILE and/or --warc FILES")
    for name in ("samples_per_shard", "image_size", "timeout", "threads", "per_host_concurrency", "max_bytes",
                 "max_caption_length", "workers", "clip_batch_size", "max_image_pixels", "work_unit_rows"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    _positive("--retries", args.retries, allow_zero=True)
    _positive("--min-image-size", args.min_image_size, allow_zero=True)
    if args.keep_fraction is not None and not 0 < args.keep_fraction <= 1:
        raise UsageError(f"--keep-fraction must be in (0, 1], got {args.keep_fraction}")
    if not 0 < args.false_match_rate < 1:
        raise UsageError(f"--false-match-rate must be in (0, 1), got {args.false_match_rate}")
    template = args.prompt_template or DEFAULT_TEMPLATE
    if "{label}" not in template:
        raise UsageError("--prompt-template must contain {label}")
    languages = None
    if args.languages:
        languages = tuple(sorted({x.strip().lower() for x in args.languages.split(",") if x.strip()}))
        if not languages:
            raise UsageError("--languages is empty")

    ingest, input_schema, extra = None, None, []
    if args.input:
        try:
            ingest = IngestConfig(files=expand_inputs(args.input), url_col=args.url_col,
                                  caption_col=args.caption_col, input_format=args.input_format)
            input_schema = check_input(ingest)
        except InputError as err:
            raise UsageError(str(err)) from None
        extra = schemas.user_fields(input_schema, args.url_col, args.caption_col)
        for name in schemas.column_clashes(input_schema.names, args.url_col, args.caption_col):
            print(f"clipcurate run: note: input column {name!r} is a reserved name; carried as "
                  f"{schemas.carried_name(name)!r}", file=sys.stderr)

    crawl = warc = None
    if args.seeds:
        import argparse as _argparse

        from clipcurate.pipeline.cli.crawl import make_config as crawl_config

        crawl, _ = crawl_config(_argparse.Namespace(
            seeds=args.seeds, output="crawl.parquet", max_depth=args.max_depth, max_pages=args.max_pages,
            timeout=args.timeout, per_host_concurrency=args.per_host_concurrency, user_agent=args.user_agent,
            allow_private_network=args.allow_private_network, ignore_robots_txt=False))
    if args.warc:
        from clipcurate.pipeline.sources.warc import WarcConfig

        try:
            warc = WarcConfig(files=expand_inputs(args.warc, any_extension=True))
        except InputError as err:
            raise UsageError(str(err)) from None
    if crawl or warc:
        import pyarrow as pa

        extra.append(pa.field("caption_source", pa.string()))

    prompt = PromptConfig(template=template, domain=args.label_domain, enabled=not args.no_prompts)
    labelled_rows = ()
    if args.labelled:
        from clipcurate.pipeline.sources.labelled import LabelledConfig, read_labelled

        labelled_rows = tuple(read_labelled(LabelledConfig(source=args.labelled, prompt=prompt)))
        known = {f.name for f in extra} | set(schemas.RESERVED_NAMES)
        carried = [{k: v for k, v in row.items() if k not in known} for row in labelled_rows]
        if carried and any(carried):
            import pyarrow as pa

            extra += list(pa.Table.from_pylist(carried).schema)

    score = select = None
    if args.clip:
        from clipcurate.pipeline.clip.scorer import ScorerConfig
        from clipcurate.pipeline.stages.score import ScoreConfig
        from clipcurate.pipeline.stages.select import SelectConfig

        if ":" not in args.clip.split("/")[0] and not os.path.isdir(args.clip):
            raise UsageError(f"--clip {args.clip!r}: no such model folder")
        score = ScoreConfig(scorer=ScorerConfig(spec=args.clip, device=args.device, batch_size=args.clip_batch_size),
                            textness_probe=os.path.join(args.output, "_work", "textness.json"),
                            textness_bias=args.textness_bias)
        select = SelectConfig(min_similarity=args.min_similarity, keep_fraction=args.keep_fraction,
                              false_match_rate=args.false_match_rate, output_dir=args.output,
                              max_textness=args.max_textness)
    elif args.min_similarity is not None or args.keep_fraction is not None:
        raise UsageError("--min-similarity and --keep-fraction need --clip MODEL")

    curation = curation_configs(args)

    fetch = FetchConfig(timeout=args.timeout, retries=args.retries, max_bytes=args.max_bytes,
                        allow_private_network=args.allow_private_network,
                        per_host_concurrency=args.per_host_concurrency,
                        respect_robots_txt=args.respect_robots_txt,
                        **({"user_agent": args.user_agent} if args.user_agent else {}))
    image = ImageConfig(image_size=args.image_size, resize_mode=args.resize_mode,
                        min_image_size=args.min_image_size, max_image_pixels=args.max_image_pixels)
    download = DownloadConfig(fetch=fetch, image=image, threads=args.threads,
                              max_in_flight=max(8, 4 * args.threads),
                              local_root=labelled_root(args.labelled) if args.labelled else None)
    work_dir = os.path.join(args.output, "_work", "download")
    download = dataclasses.replace(download, work_dir=work_dir, retry_failed=bool(args.retry_failed),
                                   unit_rows=args.work_unit_rows)
    return RunConfig(
        write=WriteConfig(output_dir=args.output, samples_per_shard=args.samples_per_shard, extra_fields=tuple(extra)),
        ingest=ingest, input_schema=input_schema, labelled_rows=labelled_rows, crawl=crawl, warc=warc,
        normalize=NormalizeConfig(max_caption_chars=args.max_caption_length),
        language=LanguageConfig(languages=languages), prompts=prompt, download=download,
        score=score, select=select, **curation,
    )


def curation_configs(args) -> dict:
    """The quality, blocklist, near/semantic dedup and balance configs, each checked (lists read) up front."""
    from clipcurate.filters.balance import BalanceConfig, load_entries
    from clipcurate.filters.blocklist import BlocklistConfig, BlocklistError, check_config
    from clipcurate.filters.quality import QualityConfig
    from clipcurate.pipeline.stages.dedup.near import NearDedupConfig

    try:
        quality = QualityConfig(min_short_side=args.min_short_side, max_aspect_ratio=args.max_aspect_ratio,
                                min_words=args.min_words, max_words=args.max_words)
        blocklist = BlocklistConfig(url_files=tuple(args.block_urls), hash_files=tuple(args.block_hashes))
        check_config(blocklist)
        near = None if args.no_near_dedup else NearDedupConfig(max_distance=args.near_dedup_distance,
                                                                bands=args.near_dedup_bands)
        semantic = None
        if args.semantic_dedup_threshold is not None:
            if not args.clip:
                raise UsageError("--semantic-dedup-threshold needs --clip MODEL")
            from clipcurate.pipeline.stages.dedup.semantic import SemanticDedupConfig

            semantic = SemanticDedupConfig(threshold=args.semantic_dedup_threshold,
                                           cluster_size=args.semantic_dedup_cluster_size)
        balance = None
        if (args.balance_labels is None) != (args.balance_cap is None):
            raise UsageError("--balance-labels and --balance-cap go together")
        if args.balance_labels:
            if not load_entries(args.balance_labels):
                raise UsageError(f"--balance-labels {args.balance_labels!r} holds no entry")
            balance = BalanceConfig(entries_file=args.balance_labels, cap=args.balance_cap,
                                    drop_unmatched=args.balance_drop_unmatched)
    except BlocklistError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        raise UsageError(f"cannot read {err.filename!r}: {err.strerror}") from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    return {"quality": quality, "blocklist": blocklist, "near_dedup": near, "semantic_dedup": semantic,
            "balance": balance}


def options_record(args) -> dict:
    skip = {"extra_args"}
    out = {k: v for k, v in vars(args).items() if k not in skip}
    out["beam_args"] = list(args.extra_args)
    return out


def summary(stats: dict, out: str) -> str:
    lines = [f"clipcurate run: {stats['input_rows']} input rows -> {stats['kept']} kept, {stats['rejected']} rejected"
             + ("" if stats["accounted_for"] else "  (WARNING: counts do not add up)")]
    for entry in stats["stages"]:
        reasons = ", ".join(f"{r} {n}" for r, n in entry["reasons"].items())
        lines.append(f"  {entry['stage']:<12} -{entry['rejected']:<6} {reasons}")
    lines.append(f"output: {out}   query it: clipcurate sql {out} \"select reason, count(*) from rejects group by 1\"")
    return "\n".join(lines)


WORK_OPTIONS = "_work/options.json"
# options that change neither what is downloaded nor the result
_NOT_IN_FINGERPRINT = {"runner", "workers", "retry_failed", "extra_args", "beam_args", "threads", "output"}


def fingerprint(args) -> dict:
    """What a resumed run must share with the run it continues: options and input files."""
    opts = {k: v for k, v in options_record(args).items() if k not in _NOT_IN_FINGERPRINT}
    from clipcurate.pipeline.sources.tables import expand_inputs

    patterns = [*args.input, *args.warc, *([args.seeds] if args.seeds else [])]
    files = []
    for path in expand_inputs(patterns, any_extension=True) if patterns else ():
        st = os.stat(path)
        files.append([os.path.abspath(path), st.st_size, int(st.st_mtime)])
    return {"options": opts, "files": files}


def prepare_work(args) -> None:
    """Keep an earlier run's finished work units only if it ran with the same options on the same input."""
    import shutil

    from clipcurate.pipeline.files import atomic_write

    work = os.path.join(args.output, "_work")
    path = os.path.join(args.output, WORK_OPTIONS)
    current = {"fingerprint": fingerprint(args), "args": options_record(args)}
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        if saved.get("fingerprint") != current["fingerprint"]:
            shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "download"), exist_ok=True)
    atomic_write(path, json.dumps(current, indent=1, default=str).encode())


def prepare_textness(score) -> None:
    """Load the CLIP model once here, check it works, and put its textness probe where the workers read it."""
    from clipcurate.pipeline.clip.scorer import ClipScorer
    from clipcurate.pipeline.clip.textness import load_or_train

    try:
        scorer = ClipScorer.load(score.scorer)
    except ValueError as err:
        raise UsageError(f"--clip {score.scorer.spec!r}: {err}") from None
    probe = load_or_train(scorer, score.scorer.spec, None)
    probe.save(score.textness_probe)


def retry_args(args):
    """The saved options of OUT's run, for --retry-failed."""
    out = args.retry_failed
    path = os.path.join(out, WORK_OPTIONS)
    if not os.path.exists(path):
        raise UsageError(f"{out!r} holds no finished run to retry (no {WORK_OPTIONS})")
    with open(path) as f:
        saved = json.load(f)["args"]
    beam_args = saved.pop("beam_args", [])
    for key, value in saved.items():
        setattr(args, key, value)
    args.extra_args = beam_args
    args.retry_failed = out
    args.output = out
    return args


def main(args) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    if args.retry_failed:
        args = retry_args(args)
    elif not args.output:
        raise UsageError("--output OUT is required")
    config = make_config(args)
    check_output(args.output)
    prepare_work(args)
    clear_previous(args.output)
    if config.score is not None:
        prepare_textness(config.score)
    from clipcurate.pipeline.flow import run
    from clipcurate.pipeline.inspect.stats import build_stats, write_stats

    info = run(config, beam_options(args))
    selection = None
    sel_path = os.path.join(args.output, "selection.json")
    if os.path.exists(sel_path):
        with open(sel_path) as f:
            selection = json.load(f)
    stats = build_stats(args.output, info, options_record(args), selection)
    write_stats(args.output, stats)
    try:
        from clipcurate.pipeline.inspect.report import render_report
    except ImportError:
        render_report = None
    if render_report is not None:
        render_report(args.output)
    print(summary(stats, args.output))
    return 0
