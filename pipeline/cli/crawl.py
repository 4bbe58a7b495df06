"""``clipcurate crawl``: seed URLs -> a Parquet table of image/alt-text pairs."""
from __future__ import annotations

import os
import sys

from clipcurate.pipeline.cli import UsageError

DEFAULT_USER_AGENT = None  # None: FetchConfig's default, which names the project and a URL


def add_arguments(parser):
    parser.add_argument("--seeds", required=True, metavar="FILE",
                        help="seed URLs, one per line (blank lines and # comments skipped)")
    parser.add_argument("--output", required=True, metavar="PAIRS.parquet",
                        help="table of pairs: url, caption, page_url, caption_source")
    parser.add_argument("--max-depth", type=int, default=5,
                        help="links followed from a seed (default 5, as wget -r; 0: the seeds only)")
    parser.add_argument("--max-pages", type=int, default=1000, help="pages fetched per site (scheme://host:port)")
    parser.add_argument("--timeout", type=float, default=10.0, help="total deadline per request, seconds")
    parser.add_argument("--per-host-concurrency", type=int, default=4)
    parser.add_argument("--user-agent", default=DEFAULT_USER_AGENT,
                        help="User-Agent header; its product token is what robots.txt is matched against")
    parser.add_argument("--allow-private-network", action="store_true",
                        help="allow requests to loopback/private/link-local addresses (tests, intranets)")
    parser.add_argument("--ignore-robots-txt", action="store_true", help="do not fetch or obey robots.txt")


def make_config(args, read_now: bool = True):
    """Check the options and the seed file up front; returns (CrawlConfig, lines that were not URLs).
    With ``read_now`` False (``run --seeds``) the seed file is only checked to exist: the pipeline reads it."""
    from clipcurate.pipeline import files as fs

    if not fs.is_file(args.seeds):
        raise UsageError(f"seeds file {args.seeds!r} does not exist")
    if not args.output.endswith(".parquet") or os.path.isdir(args.output):
        raise UsageError(f"--output {args.output!r} must be a file name ending with .parquet")
    if args.max_depth < 0 or args.max_pages < 1:
        raise UsageError("--max-depth must be >= 0 and --max-pages >= 1")
    from clipcurate.pipeline.sources.crawler import CrawlConfig, read_seeds, robots_token
    from clipcurate.pipeline.net.fetch import FetchConfig

    try:
        seeds, bad = read_seeds(args.seeds) if read_now else ((), ())
    except OSError as err:
        raise UsageError(f"cannot read seeds file {args.seeds!r}: {err.strerror or err}") from None
    if read_now and not seeds:
        raise UsageError(f"seeds file {args.seeds!r} holds no http(s) URL"
                         + (f" (first line that is not one: {bad[0][:100]!r})" if bad else ""))
    agent = {}
    if args.user_agent is not None:
        if not args.user_agent.strip():
            raise UsageError("--user-agent must not be empty")
        agent = {"user_agent": args.user_agent, "user_agent_token": robots_token(args.user_agent)}
    try:
        fetch = FetchConfig(timeout=args.timeout, per_host_concurrency=args.per_host_concurrency,
                            allow_private_network=args.allow_private_network,
                            respect_robots_txt=not args.ignore_robots_txt, max_bytes=5_000_000, **agent)
    except ValueError as err:
        raise UsageError(str(err)) from None
    config = CrawlConfig(seeds=seeds, source=args.seeds, max_depth=args.max_depth, max_pages=args.max_pages,
                         fetch=fetch)
    return config, bad


def write_pairs(rows: list[dict], path: str):
    """The rows as Parquet at ``path``, atomically (temporary name in the same folder, then rename)."""
    import pyarrow as pa

    from clipcurate.pipeline.sources.crawler import PAIR_COLUMNS
    from clipcurate.pipeline.files import write_table

    schema = pa.schema([pa.field(name, pa.string()) for name in PAIR_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_table(path, table)


def main(args) -> int:
    from clipcurate.pipeline.sources.crawler import crawl

    config, bad = make_config(args)
    if bad:
        print(f"clipcurate crawl: skipped {len(bad)} seed line(s) that are not http(s) URLs, e.g. {bad[0][:100]!r}",
              file=sys.stderr)
    rows, stats = crawl(config)
    write_pairs(rows, args.output)
    robots = "robots.txt ignored" if args.ignore_robots_txt else (
        f"{stats.pages_refused_robots} pages and {stats.images_refused_robots} images refused by robots.txt")
    print(f"crawl: {stats.pages_fetched} pages fetched ({stats.pages_failed} failed, {stats.pages_not_html} not HTML), "
          f"{stats.pairs} pairs, {robots} -> {args.output}")
    return 0
