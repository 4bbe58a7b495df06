"""``clipcurate run``'s options checked and turned into the stages' frozen configs and Beam's options;
every problem is a one-line UsageError before any work starts."""
from __future__ import annotations

import dataclasses
import os
import sys

from clipcurate.pipeline import files as fs
from clipcurate.pipeline.cli.beamflags import use_beam_flags
from clipcurate.pipeline.cli.errors import UsageError
from clipcurate.pipeline.cli.run.options import RESIZE_MODES  # noqa: F401


NEXT = "_next"  # a run writes its outputs under OUT/_next and publishes them into OUT once complete
BEAM_DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
DASK_RUNNER = "clipcurate.pipeline.dask_runner.DaskRunner"  # Beam's, mended (see that module)

# the encoder setting per --encode-format: JPEG/WebP quality, PNG zlib level (lossless: only size and speed)
ENCODE_QUALITY = {"jpg": 95, "webp": 95, "png": 6}


def staging_dir(out: str) -> str:
    return fs.join(out, NEXT)


def _positive(name, value, allow_zero=False):
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def is_dask(runner: str) -> bool:
    # Beam's own DaskRunner, by any name, is replaced by the mended one: Beam's loses outputs
    return runner.lower() == "dask" or runner in (DASK_RUNNER, "DaskRunner", BEAM_DASK_RUNNER)


def beam_options(args, dask_address: str | None = None):
    """Beam's options: the runner (``dask`` with the address of the cluster to use), then every other
    Beam flag the user gave, as given."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if is_dask(args.runner):
        flags = [f"--runner={DASK_RUNNER}", f"--dask_client_address={dask_address or args.dask_address}"]
        flags += list(args.extra_args)
        return PipelineOptions(flags)
    flags = [f"--runner={args.runner}"] + list(args.extra_args)
    if args.runner in ("DirectRunner", "FnApiRunner") or args.runner.endswith(".DirectRunner"):
        flags.append(f"--direct_num_workers={args.workers}")
        flags.append("--direct_running_mode=" + ("multi_processing" if args.workers > 1 else "in_memory"))
    return PipelineOptions(flags)


def make_config(args):
    """Every option checked and turned into the stages' configs; UsageError on the first problem."""
    from clipcurate.filters.normalize import NormalizeConfig
    from clipcurate.filters.prompts import DEFAULT_TEMPLATE, PromptConfig
    from clipcurate.pipeline.stages.download import DownloadConfig
    from clipcurate.pipeline.net.fetch import FetchConfig
    from clipcurate.pipeline.media.images import ImageConfig
    from clipcurate.pipeline.sources.labelled import labelled_root
    from clipcurate.pipeline.sources.tables import IngestConfig, InputError, check_input, expand_inputs
    from clipcurate.pipeline.flow import RunConfig
    from clipcurate.pipeline.stages.dedup.exact import PairDedupConfig, buckets_for, rows_for
    from clipcurate import schemas
    from clipcurate.pipeline.sinks.shards import WriteConfig

    use_beam_flags(args.extra_args, "a clipcurate run option")
    if args.dask_address and not is_dask(args.runner):
        raise UsageError("--dask-address needs --runner dask")
    if is_dask(args.runner):
        try:
            import dask.distributed  # noqa: F401
            import apache_beam.runners.dask.dask_runner  # noqa: F401
        except ImportError as err:
            raise UsageError(f"--runner dask needs the dask extra: pip install 'clipcurate[dask]' ({err})") from None
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
    language = language_config(args)

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
            allow_private_network=args.allow_private_network, ignore_robots_txt=False), read_now=False)
    if args.warc:
        from clipcurate.pipeline.sources.warc import WarcConfig

        try:
            warc = WarcConfig(files=expand_inputs(args.warc, any_extension=True))
        except InputError as err:
            raise UsageError(str(err)) from None
    if crawl or warc:
        import pyarrow as pa

        extra.append(pa.field("caption_source", pa.string()))
        if "page_language" not in {f.name for f in extra}:
            extra.append(pa.field("page_language", pa.string()))  # declared by the page, when it does

    prompt = PromptConfig(template=template, domain=args.label_domain, enabled=not args.no_prompts)
    labelled = None
    if args.labelled:
        from clipcurate.pipeline.sources.labelled import LabelledConfig, check_labelled

        labelled = LabelledConfig(source=args.labelled, prompt=prompt)
        try:
            carried = check_labelled(labelled)
        except InputError as err:
            raise UsageError(str(err)) from None
        known = {f.name for f in extra}
        extra += [f for f in carried if f.name not in known]

    score = select = None
    if args.clip:
        from clipcurate.pipeline.clip.scorer import ScorerConfig
        from clipcurate.pipeline.stages.score import ScoreConfig
        from clipcurate.pipeline.stages.select import SelectConfig
        from clipcurate.pipeline.clip.textness import default_probe_path

        if ":" not in args.clip.split("/")[0] and not os.path.isdir(args.clip):
            raise UsageError(f"--clip {args.clip!r}: no such model folder")
        if args.textness_probe:
            if not fs.exists(args.textness_probe):
                raise UsageError(f"--textness-probe {args.textness_probe!r}: no such file")
            probe = args.textness_probe
        else:  # the probe saved beside the model, if there is one
            probe = default_probe_path(args.clip)
            probe = probe if probe and fs.exists(probe) else None
        if probe is None and (args.max_textness is not None or args.textness_bias):
            raise UsageError(f"--max-textness and --textness-bias need the model's textness probe: run "
                             f"`clipcurate textness {args.clip}` once (or give --textness-probe FILE)")
        # the model is loaded on the workers only; the launcher checks its spec and probe file
        score = ScoreConfig(scorer=ScorerConfig(spec=args.clip, device=args.device, batch_size=args.clip_batch_size),
                            textness_probe=probe, textness_bias=args.textness_bias)
        select = SelectConfig(min_similarity=args.min_similarity, keep_fraction=args.keep_fraction,
                              false_match_rate=args.false_match_rate,
                              max_textness=args.max_textness)
    elif args.min_similarity is not None or args.keep_fraction is not None:
        raise UsageError("--min-similarity and --keep-fraction need --clip MODEL")
    if args.until and args.clip:
        raise UsageError(f"--until {args.until} stops before any image is downloaded: it does not go with --clip")

    curation = curation_configs(args)

    fetch = FetchConfig(timeout=args.timeout, retries=args.retries, max_bytes=args.max_bytes,
                        allow_private_network=args.allow_private_network,
                        per_host_concurrency=args.per_host_concurrency,
                        respect_robots_txt=args.respect_robots_txt,
                        **({"user_agent": args.user_agent} if args.user_agent else {}))
    image = ImageConfig(image_size=args.image_size, resize_mode=args.resize_mode,
                        min_image_size=args.min_image_size, max_image_pixels=args.max_image_pixels,
                        encode_format=args.encode_format, encode_quality=ENCODE_QUALITY[args.encode_format])
    download = DownloadConfig(fetch=fetch, image=image, threads=args.threads,
                              max_in_flight=max(8, 4 * args.threads),
                              local_root=labelled_root(args.labelled) if args.labelled else None)
    work_dir = fs.join(args.output, "_work", "download")
    download = dataclasses.replace(download, work_dir=work_dir, retry_failed=bool(args.retry_failed),
                                   unit_rows=args.work_unit_rows)
    input_bytes = sum(fs.stat(f)[0] for f in ingest.files) if ingest else 0  # sizes the shuffles' groups
    return RunConfig(
        write=WriteConfig(output_dir=staging_dir(args.output), samples_per_shard=args.samples_per_shard,
                          extra_fields=tuple(extra), image_ext=args.encode_format,
                          output_format=args.output_format, batch_layout=batch_layout_config(args)),
        ingest=ingest, input_schema=input_schema, labelled=labelled, crawl=crawl, warc=warc,
        normalize=NormalizeConfig(max_caption_chars=args.max_caption_length),
        pair_dedup=PairDedupConfig(buckets=buckets_for(input_bytes)) if ingest else PairDedupConfig(),
        expected_rows=rows_for(input_bytes) if ingest and not (args.seeds or args.warc or args.labelled) else None,
        language=language, prompts=prompt, download=download,
        score=score, select=select, until=args.until, **curation,
    )


def language_config(args):
    """--languages and the --language-* options as the language stage's config."""
    from clipcurate.filters.language import PAGE_PRIOR, URL_PRIOR, LanguageConfig, supported_languages

    languages = None
    if args.languages:
        languages = tuple(sorted({x.strip().lower() for x in args.languages.split(",") if x.strip()}))
        if not languages:
            raise UsageError("--languages is empty")
        unknown = [x for x in languages if x not in supported_languages()]
        if unknown:
            raise UsageError(f"--languages: unknown language code(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(supported_languages()))}")
    kwargs = {}
    if args.language_drop_confidence is not None:
        if not 0 < args.language_drop_confidence <= 1:
            raise UsageError(f"--language-drop-confidence must be in (0, 1], got {args.language_drop_confidence}")
        if languages is None:
            raise UsageError("--language-drop-confidence needs --languages")
        kwargs["drop_confidence"] = args.language_drop_confidence
    if not getattr(args, "language_word_evidence", True):
        if languages is None:
            raise UsageError("--no-language-word-evidence needs --languages")
        kwargs["word_evidence"] = False
    for name, default in (("page_prior", PAGE_PRIOR), ("url_prior", URL_PRIOR)):
        value = getattr(args, f"language_{name}")
        if value is None:
            continue
        if value != value:  # NaN: the flag alone
            value = default
        if value < 0:
            raise UsageError(f"--language-{name.replace('_', '-')} must be >= 0, got {value}")
        kwargs[name] = value
    return LanguageConfig(languages=languages, **kwargs)


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


def batch_layout_config(args):
    """--batch-layout ontology --ontology FILE --batch-size B, checked (the file read) up front."""
    if args.batch_layout == "key":
        if args.ontology or args.batch_size:
            raise UsageError("--ontology and --batch-size go with --batch-layout ontology")
        return None
    from clipcurate.filters.ontology import OntologyError, load_ontology
    from clipcurate.pipeline.sinks.batches import BatchLayoutConfig

    if not args.ontology or not args.batch_size:
        raise UsageError("--batch-layout ontology needs --ontology FILE and --batch-size B")
    if args.batch_size < 2 or args.samples_per_shard % args.batch_size:
        raise UsageError(f"--batch-size must be >= 2 and divide --samples-per-shard ({args.samples_per_shard}), "
                         f"so that shards hold whole batches; got {args.batch_size}")
    try:
        load_ontology(args.ontology)
    except OntologyError as err:
        raise UsageError(str(err)) from None
    return BatchLayoutConfig(ontology_file=os.path.abspath(args.ontology), batch_size=args.batch_size)
