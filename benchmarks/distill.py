"""Benchmark: a distilled student scorer against its teacher, on CPU.

1. trains a teacher: the bootstrap CLIP at a 48-px input (the default architecture otherwise:
   width 128, one block per tower; a 2.25x longer image sequence than the default 32 px) on the
   demo's labelled seed set (1,000 shape pictures, 10 labels), as benchmarks/bootstrap.py does;
2. curates a generated web (the demo's generator, seed 1, 4,000 pictures) with
   ``clipcurate run --clip TEACHER`` (every command runs as its own process);
3. distills the teacher into the default student (24-px input, width 64, one block per tower,
   8 views) with ``clipcurate distill TEACHER --data OUT/shards``;
4. on a held-out web (seed 2: other pictures, other captions) runs ``clipcurate run`` twice
   under the default selection (per-image threshold against mismatched captions), once with
   the teacher and once with the student, and compares the keep/reject decisions of every row
   that reached the select stage (row keys are the same in both runs);
5. times scoring (``ClipScorer.embed_images`` + ``embed_texts``: decode, resize, both towers)
   of the held-out web's pairs with each model, best of ``--repeats`` interleaved rounds.

    .venv/bin/python benchmarks/distill.py [--threads 1] [--teacher-epochs 70] [--distill-epochs 40]

Targets: student throughput >= 3x the teacher's; >= 95% of the decisions the same.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow.parquet as pq
import torch
from safetensors.torch import load_file

from clipcurate.pipeline.clip.data import decode_image
from clipcurate.pipeline.clip.distill import DistillConfig
from clipcurate.pipeline.clip.evaluate import zero_shot
from clipcurate.pipeline.clip.model import ClipConfig
from clipcurate.pipeline.clip.scorer import ClipScorer, ScorerConfig
from clipcurate.pipeline.clip.train import TrainConfig, train_bootstrap
from clipcurate.pipeline.demo import synth
from clipcurate.pipeline.demo.web import DemoConfig, WebServer, make_web, pairs_table
from clipcurate.pipeline.sources.seeds import training_samples

from bootstrap import held_out  # benchmarks/bootstrap.py: held-out labelled pictures

# two blocks per tower or width 192 cost 2x the training time for less zero-shot accuracy in it
TEACHER = ClipConfig(image_size=48)
# near dedup is left out: it plays no part in the comparison (the same rows reach the select stage
# either way) and the demo's drawn shapes keep it busy; everything else is the default run
RUN_ARGS = ["--languages", "en", "--allow-private-network", "--samples-per-shard", "500", "--image-size", "128",
            "--timeout", "5", "--retries", "0", "--device", "cpu", "--no-near-dedup"]


def cli(args: list[str], threads: int) -> int:
    """A clipcurate command as its own process (as a user runs it: nothing lingers in this one)."""
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", *args], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"clipcurate {args[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.returncode


def curate(web: DemoConfig, model: str, out: Path, tmp: Path, threads: int) -> tuple[float, list]:
    """Serve ``web`` on 127.0.0.1 and run clipcurate with ``model``: (seconds, downloadable pairs)."""
    routes, rows = make_web(web)
    server = WebServer(routes)
    try:
        table = tmp / f"pairs-{web.seed}.parquet"
        pq.write_table(pairs_table(rows, server.base_url), table)
        t0 = time.perf_counter()
        cli(["run", "--input", str(table), "--output", str(out), "--clip", model, *RUN_ARGS], threads)
        seconds = time.perf_counter() - t0
    finally:
        server.close()
    pairs = []
    for row in rows:
        _, _, body = routes.get(row["url"], (404, "", b""))
        try:
            decode_image(body, 8)
        except ValueError:
            continue
        pairs.append((body, row["caption"]))
    return seconds, pairs


def decisions(out: Path) -> dict[tuple[str, str], tuple[bool, str]]:
    """(url path, caption) -> (kept, truth) for every row the select stage decided on. (Not the row key:
    it hashes the whole URL, and each run serves the web on another port.)"""
    columns = ["url", "caption", "truth"]
    result = {}
    for kept, pattern in ((True, "shards/*.parquet"), (False, "rejects/select/*.parquet")):
        for f in sorted(glob.glob(str(out / pattern))):
            for r in pq.read_table(f, columns=columns).to_pylist():
                result[(urlsplit(r["url"]).path, r["caption"])] = (kept, r["truth"])
    return result


def throughput(scorers: dict[str, ClipScorer], pairs, repeats: int) -> dict[str, float]:
    images, texts = [p[0] for p in pairs], [p[1] for p in pairs]
    best = {name: float("inf") for name in scorers}
    for _ in range(repeats):
        for name, scorer in scorers.items():
            t0 = time.perf_counter()
            scorer.embed_images(images)
            scorer.embed_texts(texts)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: len(pairs) / seconds for name, seconds in best.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for everything (default 1: on 2 shared cores, 2 threads ran slower)")
    ap.add_argument("--teacher-epochs", type=int, default=70)
    ap.add_argument("--distill-epochs", type=int, default=40)
    ap.add_argument("--views", type=int, default=DistillConfig().views)
    ap.add_argument("--web-images", type=int, default=4000, help="pictures on the web the student is distilled on")
    ap.add_argument("--held-out-images", type=int, default=600, help="pictures on the held-out web")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels = list(synth.LABELS[:10])
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        figures, t_start = {"threads": args.threads}, time.perf_counter()

        seed_dir, teacher = tmp / "seed", tmp / "teacher"
        synth.write_image_folder(seed_dir, labels, per_label=100, seed=0, size=64)
        t0 = time.perf_counter()
        _, summary = train_bootstrap(teacher, training_samples(seed_dir, TEACHER.image_size), TEACHER,
                                     TrainConfig(epochs=args.teacher_epochs, seed=args.seed, device="cpu",
                                                 progress=False))
        teacher_scorer = ClipScorer.load(ScorerConfig(spec=str(teacher), device="cpu"))
        images, names = held_out(labels, 30, seed=1, size=64)
        figures["teacher_train_s"] = round(time.perf_counter() - t0, 1)
        figures["teacher_zero_shot"] = zero_shot(teacher_scorer, images, names, labels).accuracy
        print(f"teacher: {args.teacher_epochs} epochs in {figures['teacher_train_s']:.0f}s; zero-shot "
              f"{figures['teacher_zero_shot']:.3f} on {len(images)} held-out pictures", flush=True)

        seconds, _ = curate(DemoConfig(seed=1, web_images=args.web_images), str(teacher), tmp / "curated", tmp,
                             args.threads)
        n_curated = sum(json.load(open(tmp / "curated" / "shards" / "sizes.json")).values())
        print(f"curated web (seed 1) with the teacher: {n_curated} pairs kept, {seconds:.0f}s", flush=True)

        student = tmp / "student"
        t0 = time.perf_counter()
        cli(["distill", str(teacher), "--data", str(tmp / "curated"), "--output", str(student),
             "--epochs", str(args.distill_epochs), "--views", str(args.views), "--seed", str(args.seed),
             "--device", "cpu", "--quiet", "--threads", str(args.threads)], args.threads)
        figures["distill_s"] = round(time.perf_counter() - t0, 1)
        student_scorer = ClipScorer.load(ScorerConfig(spec=str(student), device="cpu"))
        figures["student_zero_shot"] = zero_shot(student_scorer, images, names, labels).accuracy
        print(f"student: distilled on {n_curated} pairs x {args.views} views, {args.distill_epochs} epochs in "
              f"{figures['distill_s']:.0f}s; zero-shot {figures['student_zero_shot']:.3f}", flush=True)

        held_web = DemoConfig(seed=2, web_images=args.held_out_images)
        run_t, pairs = curate(held_web, str(teacher), tmp / "held-teacher", tmp, args.threads)
        run_s, _ = curate(held_web, str(student), tmp / "held-student", tmp, args.threads)
        dt, ds = decisions(tmp / "held-teacher"), decisions(tmp / "held-student")
        common = sorted(set(dt) & set(ds))
        same = [dt[k][0] == ds[k][0] for k in common]
        figures["decisions"] = len(common)
        figures["agreement"] = float(np.mean(same))
        figures["teacher_kept"] = sum(dt[k][0] for k in common)
        figures["student_kept"] = sum(ds[k][0] for k in common)
        by_truth = {}
        for k, s in zip(common, same):
            by_truth.setdefault(dt[k][1], []).append(s)
        figures["agreement_by_truth"] = {t: round(float(np.mean(v)), 4) for t, v in sorted(by_truth.items())}
        kept_rate = lambda d, truth: np.mean([d[k][0] for k in common if dt[k][1] == truth])  # noqa: E731
        print(f"held-out web (seed 2): {len(common)} decisions, {figures['agreement']:.2%} the same "
              f"(teacher keeps {figures['teacher_kept']}, student {figures['student_kept']}); "
              f"right captions kept {kept_rate(dt, 'match'):.1%} / {kept_rate(ds, 'match'):.1%}, mismatched kept "
              f"{kept_rate(dt, 'mismatch'):.1%} / {kept_rate(ds, 'mismatch'):.1%} (teacher / student); "
              f"whole runs {run_t:.0f}s / {run_s:.0f}s", flush=True)
        print("  agreement by kind of row: " + ", ".join(f"{t} {v:.1%} ({len(by_truth[t])})"
                                                      for t, v in figures["agreement_by_truth"].items()))

        rates = throughput({"teacher": teacher_scorer, "student": student_scorer}, pairs, args.repeats)
        figures["teacher_pairs_per_s"], figures["student_pairs_per_s"] = round(rates["teacher"]), round(rates["student"])
        figures["speedup"] = rates["student"] / rates["teacher"]
        params = {name: sum(v.numel() for v in load_file(str(path / "model.safetensors")).values())
                  for name, path in (("teacher", teacher), ("student", student))}
        print(f"scoring {len(pairs)} pairs on {args.threads} thread(s): teacher {rates['teacher']:.0f} pairs/s "
              f"({params['teacher'] / 1e6:.2f} M parameters), student {rates['student']:.0f} pairs/s "
              f"({params['student'] / 1e6:.2f} M): {figures['speedup']:.2f}x", flush=True)
        figures["total_s"] = round(time.perf_counter() - t_start, 1)
        print(f"total {figures['total_s']:.0f}s; targets: speed-up >= 3x {'met' if figures['speedup'] >= 3 else 'NOT met'}, "
              f"agreement >= 95% {'met' if figures['agreement'] >= 0.95 else 'NOT met'}")
        print(json.dumps(figures), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
