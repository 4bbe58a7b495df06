"""Benchmark: does curation pay? (DataComp's question, at our scale.)

1. builds a noisy synthetic web with the demo's generator, configured so that at least 40% of
   its rows are wrong (a caption of another shape), foreign (German, French), duplicates (the
   same row again, the same picture at a second URL) or broken (missing, not an image, empty);
2. trains a filter: the bootstrap CLIP on the demo's labelled seed set (1,000 shape pictures);
3. "all": every downloadable pair of the web (each row whose URL returns a decodable image),
   written as WebDataset shards; "curated": a real ``clipcurate run --clip FILTER
   --languages en`` over the same web (dedup, language, download checks, the default CLIP
   selection);
4. trains the bootstrap CLIP from scratch on each, with the same budget (the same number of
   samples seen: epochs = budget / pairs, rounded) and the same seed, and measures zero-shot
   accuracy (prompt ensemble) on held-out labelled pictures neither saw.

    .venv/bin/python benchmarks/curation_gain.py [--threads 1] [--budget 30000] [--web-images 1200]

Target: the curated set wins by >= 10 points.
"""
from __future__ import annotations

import argparse
import collections
import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from clipcurate.pipeline.clip.data import decode_image
from clipcurate.pipeline.clip.evaluate import caption_eval, zero_shot
from clipcurate.pipeline.clip.model import ClipConfig
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap
from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.demo.web import DemoConfig, WebServer, make_web, pairs_table
from clipcurate.pipeline.sources.seeds import training_samples

from bootstrap import held_out  # benchmarks/bootstrap.py: held-out labelled pictures

BAD = ("mismatch", "foreign_de", "foreign_fr", "duplicate_row", "same_picture", "broken")
RUN_ARGS = ["--languages", "en", "--allow-private-network", "--samples-per-shard", "500", "--image-size", "128",
            "--timeout", "5", "--retries", "0", "--device", "cpu"]


def cli(args: list[str], threads: int) -> None:
    """A clipcurate command as its own process, as a user runs it."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"clipcurate {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def noisy_web(seed: int, images: int) -> DemoConfig:
    return DemoConfig(seed=seed, web_images=images, mismatch_fraction=0.3, label_only_fraction=0.04,
                      foreign_fraction=0.12, duplicate_rows=images // 10, same_picture_urls=images // 20,
                      broken_urls=images // 20)


def write_shard(path: Path, pairs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for i, (image, caption) in enumerate(pairs):
            for ext, data in (("jpg", image), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def train_and_evaluate(shards: Path, model_dir: Path, budget: int, seed: int, pictures, labels) -> dict:
    samples = training_samples(shards, ClipConfig().image_size)
    epochs = max(1, round(budget / len(samples[0])))
    t0 = time.perf_counter()
    train_bootstrap(model_dir, samples, ClipConfig(), TrainConfig(epochs=epochs, seed=seed, device="cpu",
                                                                  progress=False))
    seconds = time.perf_counter() - t0
    scorer = ClipScorer.load(ScorerConfig(spec=str(model_dir), device="cpu"))
    images, names = pictures
    zs = zero_shot(scorer, images, names, labels)
    web = caption_eval(scorer, images, names, labels, synth.make_web_caption, seed=3)
    return {"pairs": len(samples[0]), "epochs": epochs, "samples_seen": epochs * len(samples[0]),
            "train_s": round(seconds, 1), "zero_shot": zs.accuracy, "web_caption_accuracy": web.accuracy,
            "web_caption_auc": web.auc}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on 2 shared cores, 2 threads ran slower)")
    ap.add_argument("--web-images", type=int, default=1200, help="distinct pictures on the web")
    ap.add_argument("--budget", type=int, default=30000, help="training samples seen by each model")
    ap.add_argument("--filter-epochs", type=int, default=60, help="epochs of the filter CLIP on the seed set")
    ap.add_argument("--seed", type=int, default=0, help="training seed (the same for both models)")
    ap.add_argument("--web-seed", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels = list(synth.LABELS[:10])
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        routes, rows = make_web(noisy_web(args.web_seed, args.web_images))
        kinds = collections.Counter(r["truth"] for r in rows)
        bad = sum(kinds[k] for k in BAD) / len(rows)
        print(f"web (seed {args.web_seed}): {len(rows)} rows, {bad:.1%} wrong, foreign, duplicate or broken: "
              + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())), flush=True)

        downloadable = []
        for row in rows:
            body = routes.get(row["url"], (404, "", b""))[2]
            try:
                decode_image(body, 8)
            except ValueError:
                continue
            downloadable.append((body, row["caption"]))
        write_shard(tmp / "all" / "shards" / "00000.tar", downloadable)

        seed_dir, filter_dir = tmp / "seed", tmp / "filter"
        synth.write_image_folder(seed_dir, labels, per_label=100, seed=0, size=64)
        t0 = time.perf_counter()
        train_bootstrap(filter_dir, training_samples(seed_dir, ClipConfig().image_size), ClipConfig(),
                        TrainConfig(epochs=args.filter_epochs, seed=args.seed, device="cpu", progress=False))
        pictures = held_out(labels, 50, seed=5, size=64)
        filter_zs = zero_shot(ClipScorer.load(ScorerConfig(spec=str(filter_dir), device="cpu")), *pictures, labels)
        print(f"filter CLIP: {args.filter_epochs} epochs on the seed set in {time.perf_counter() - t0:.0f}s, "
              f"zero-shot {filter_zs.accuracy:.3f}", flush=True)

        server = WebServer(routes)
        try:
            table = tmp / "pairs.parquet"
            pq.write_table(pairs_table(rows, server.base_url), table)
            t0 = time.perf_counter()
            cli(["run", "--input", str(table), "--output", str(tmp / "curated"), "--clip", str(filter_dir),
                 *RUN_ARGS], args.threads)
            run_s = time.perf_counter() - t0
        finally:
            server.close()
        curated_truth = collections.Counter(pq.read_table(sorted(glob.glob(str(tmp / "curated" / "shards" / "*.parquet"))),
                                                          columns=["truth"]).column("truth").to_pylist())
        print(f"curated: {sum(curated_truth.values())} pairs kept in {run_s:.0f}s: "
              + ", ".join(f"{k} {n}" for k, n in sorted(curated_truth.items())), flush=True)

        results = {}
        for name, shards in (("all", tmp / "all"), ("curated", tmp / "curated")):
            results[name] = train_and_evaluate(shards, tmp / f"model-{name}", args.budget, args.seed, pictures,
                                               labels)
            r = results[name]
            print(f"{name:>8}: {r['pairs']} pairs x {r['epochs']} epochs ({r['samples_seen']} samples seen, "
                  f"{r['train_s']:.0f}s): zero-shot {r['zero_shot']:.3f}, web-style captions accuracy "
                  f"{r['web_caption_accuracy']:.3f} AUC {r['web_caption_auc']:.3f}", flush=True)
        gain = results["curated"]["zero_shot"] - results["all"]["zero_shot"]
        print(f"curation gain: {100 * gain:+.1f} points of zero-shot accuracy on {len(pictures[0])} held-out pictures "
              f"(target >= +10: {'met' if gain >= 0.10 else 'NOT met'}); total {time.perf_counter() - t_start:.0f}s")
        print(json.dumps({"bad_fraction": bad, "rows": len(rows), "downloadable": len(downloadable),
                          "filter_zero_shot": filter_zs.accuracy, "curated_kept": dict(curated_truth),
                          "threads": args.threads, "budget": args.budget, "seed": args.seed,
                          "gain_points": 100 * gain, **results}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
