"""``clipcurate demo``: the whole product on generated data, on this machine, in a few minutes.

1. writes a labelled seed set of shape pictures (OUT/seed/),
2. trains the bootstrap CLIP on it (OUT/model/),
3. builds a small noisy web of pairs and serves it on 127.0.0.1 (OUT/web/pairs.parquet),
4. runs the pipeline on the web with the model (OUT/curated/),
5. prints what was kept and rejected, per kind of row, and how to query it.
"""
from __future__ import annotations

import os
import sys
import time

import pyarrow.parquet as pq

from clipcurate.pipeline.cli import UsageError


def add_arguments(parser):
    parser.add_argument("--output", default="demo-out", help="folder for everything the demo writes (default demo-out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data and the training")
    parser.add_argument("--web-images", type=int, default=400, help="distinct pictures on the generated web")
    parser.add_argument("--seed-per-label", type=int, default=100, help="labelled seed images per label")
    parser.add_argument("--epochs", type=int, default=120, help="bootstrap training epochs (default 120)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def outcome_table(curated: str) -> list[tuple]:
    from clipcurate.pipeline.cli.sql import connect

    con = connect(curated)
    return con.execute("""
        with everything as (
            select truth, 'kept' as outcome from pairs
            union all select truth, stage || ':' || reason from rejects)
        select truth, outcome, count(*) n from everything group by all order by truth, n desc""").fetchall()


def truth_rates(curated: str) -> dict:
    """Share of right captions kept and of mismatched captions kept (the demo's acceptance figures)."""
    from clipcurate.pipeline.cli.sql import connect

    con = connect(curated)
    rows = con.execute("""
        with everything as (
            select truth, true as kept from pairs
            union all select truth, false from rejects where stage in ('select', 'clip'))
        select truth, avg(kept::int), count(*) from everything where truth in ('match', 'label_only', 'mismatch')
        group by all""").fetchall()
    return {t: (float(rate), int(n)) for t, rate, n in rows}


def main(args) -> int:
    from clipcurate.pipeline.clip.model import ClipConfig
    from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
    from clipcurate.pipeline.clip.textness import default_probe_path, train_and_save
    from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap
    from clipcurate.pipeline.sources.seeds import training_samples
    from clipcurate.pipeline.cli import main as cli_main
    from clipcurate.pipeline.demo.web import DemoConfig, WebServer, make_web, pairs_table
    from clipcurate.pipeline.demo import synth

    out = os.path.abspath(args.output)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {out!r}: {err.strerror}") from None
    config = DemoConfig(seed=args.seed, web_images=args.web_images, seed_per_label=args.seed_per_label)
    t0 = time.time()
    seed_dir, model_dir = os.path.join(out, "seed"), os.path.join(out, "model")
    print(f"[1/4] seed set: {len(config.labels)} labels x {config.seed_per_label} pictures -> {seed_dir}", flush=True)
    synth.write_image_folder(seed_dir, labels=config.labels, per_label=config.seed_per_label, seed=args.seed,
                             size=config.seed_image_size)
    print(f"[2/4] training the bootstrap CLIP -> {model_dir}", flush=True)
    if args.epochs < 1:
        raise UsageError("--epochs must be >= 1")
    train = TrainConfig(seed=args.seed, device=args.device, epochs=args.epochs)
    try:
        samples = training_samples(seed_dir, ClipConfig().image_size)
    except ValueError as err:
        raise UsageError(str(err)) from None
    train_bootstrap(model_dir, samples, config=train)
    train_and_save(ClipScorer.load(ScorerConfig(spec=model_dir, device=args.device)), default_probe_path(model_dir))
    routes, rows = make_web(config)
    server = WebServer(routes)
    try:
        web_dir = os.path.join(out, "web")
        os.makedirs(web_dir, exist_ok=True)
        table_path = os.path.join(web_dir, "pairs.parquet")
        pq.write_table(pairs_table(rows, server.base_url), table_path)
        curated = os.path.join(out, "curated")
        print(f"[3/4] web: {len(rows)} pairs served at {server.base_url} -> {table_path}", flush=True)
        print(f"[4/4] clipcurate run -> {curated}", flush=True)
        code = cli_main(["run", "--input", table_path, "--output", curated, "--clip", model_dir,
                         "--languages", "en", "--allow-private-network", "--samples-per-shard", "100",
                         "--image-size", "128", "--timeout", "5", "--retries", "0", "--device", args.device])
    finally:
        server.close()
    if code != 0:
        return code
    print("\nwhat happened to each kind of row (truth column of the generated web):")
    for truth, outcome, n in outcome_table(curated):
        print(f"  {truth:<14} {outcome:<32} {n}")
    rates = truth_rates(curated)
    for truth in ("match", "label_only", "mismatch"):
        if truth in rates:
            rate, n = rates[truth]
            print(f"  {truth:<14} kept by the CLIP selection: {rate:6.1%} of {n}")
    print(f"\ndone in {time.time() - t0:.0f} s. Look at {os.path.join(curated, 'report.html')} and try:")
    print(f"  clipcurate sql {curated} \"select truth, count(*) from pairs group by 1\"")
    print(f"  clipcurate sql {curated} \"select reason, truth, caption, similarity from rejects where stage = 'select' limit 20\"")
    sys.stdout.flush()
    return 0
