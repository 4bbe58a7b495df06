"""Metadata-only throughput and memory: ``clipcurate run --until prompts`` on N generated rows.

    python benchmarks/scale.py [--rows 100000 1000000] [--workers 1] [--keep]

The rows mix what web alt-text has: ~10% repeated URLs with another caption, ~5% repeated
url+caption, ten languages, ~5% bare labels ("dog"), and junk (empty captions, bad URLs, HTML
entities). Each N runs as a whole process (start-up included); it prints rows/s and the peak RSS
of the whole process tree (polled every 0.2 s), and the ratio of peak memory to the smallest N.
Targets (issue 12): >= 20,000 rows/s at 1 M rows on 2 cores, peak memory at 1 M <= 1.5x at 100 k.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = {
    "en": "red car parked near the old house at night with a small dog running in the park".split(),
    "de": "ein rotes Auto steht vor dem alten Haus in der Nacht mit einem kleinen Hund im Park".split(),
    "fr": "une voiture rouge garée près de la vieille maison la nuit avec un petit chien au parc".split(),
    "es": "un coche rojo aparcado cerca de la casa vieja por la noche con un perro pequeño".split(),
    "it": "una macchina rossa parcheggiata vicino alla vecchia casa di notte con un piccolo cane".split(),
    "pt": "um carro vermelho estacionado perto da casa velha à noite com um cachorro pequeno".split(),
    "nl": "een rode auto geparkeerd bij het oude huis in de nacht met een kleine hond in het park".split(),
    "pl": "czerwony samochód zaparkowany obok starego domu w nocy z małym psem w parku".split(),
    "ru": "красная машина припаркована возле старого дома ночью с маленькой собакой в парке".split(),
    "ja": "夜 古い 家 の 近く に 停め た 赤い 車 と 公園 で 走る 小さな 犬".split(),
}
LABELS = ["dog", "Boxer", "cat", "tabby cat", "sunflower", "red car", "airplane", "Eiffel Tower"]


def make_rows(n: int, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    langs = list(WORDS)
    urls, captions, ids = [], [], []
    for i in range(n):
        r = rng.random()
        if r < 0.05 and urls:  # the same pair again
            j = rng.randrange(len(urls))
            urls.append(urls[j]), captions.append(captions[j])
        elif r < 0.15 and urls:  # the same URL, another caption
            urls.append(urls[rng.randrange(len(urls))]), captions.append(" ".join(rng.sample(WORDS["en"], 5)))
        else:
            urls.append(f"https://img{i % 97}.example.com/{i:09d}/{rng.getrandbits(40):010x}.jpg")
            k = rng.random()
            if k < 0.05:
                captions.append(rng.choice(LABELS))
            elif k < 0.07:
                captions.append(rng.choice(["", "   ", "&nbsp;", "IMG_2041.JPG"]))
            else:
                words = WORDS[rng.choice(langs)]
                captions.append(" ".join(rng.sample(words, rng.randint(3, 9))) + rng.choice(["", " &amp; more", ""]))
        if rng.random() < 0.003:
            urls[-1] = rng.choice(["ftp://x/y.jpg", "javascript:void(0)", "not a url"])
        ids.append(i)
    return pa.table({"url": urls, "caption": captions, "id": ids})


def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_once(src: str, out: str, workers: int) -> tuple[float, int, int]:
    cmd = [sys.executable, "-m", "clipcurate.pipeline.cli", "run", "--input", src, "--output", out,
           "--until", "prompts", "--workers", str(workers)]
    env = dict(os.environ, CLIPCURATE_PROGRESS="0", NO_ALBUMENTATIONS_UPDATE="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}")
    return wall, peak, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=1, help="DirectRunner worker processes")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            src = os.path.join(tmp, f"rows-{n}.parquet")
            pq.write_table(make_rows(n), src)
            wall, peak, _ = run_once(src, os.path.join(tmp, f"out-{n}"), args.workers)
            results.append((n, wall, peak))
            print(f"{n:>9,} rows: {wall:7.1f} s, {n / wall:8,.0f} rows/s, peak RSS {peak / 2**20:7.0f} MiB "
                  f"(workers={args.workers})", flush=True)
    base = results[0]
    for n, wall, peak in results[1:]:
        print(f"{n:,} vs {base[0]:,} rows: time x{wall / base[1]:.2f} for x{n / base[0]:.0f} rows, "
              f"peak memory x{peak / base[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
