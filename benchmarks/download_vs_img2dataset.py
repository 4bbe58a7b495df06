"""Download throughput: clipcurate run vs img2dataset's CLI on the same loopback URLs, in one run.

Serves N distinct real JPEGs (up to 1200 px) from a loopback server in its own
process, then downloads and resizes all of them with
  - img2dataset (W processes, T threads each, webdataset output), and
  - clipcurate run (DirectRunner, W worker processes, T threads each),
with the same image size and resize mode, and prints images/s and the ratio;
--repeat R runs both R times (alternating) and prints every ratio.

    .venv/bin/python benchmarks/download_vs_img2dataset.py [--n 2000] [--threads 16] [--workers 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)


def _make_images(n: int, seed: int) -> list[bytes]:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    bases = []
    for i in range(8):
        w, h = rng.randint(300, 1200), rng.randint(300, 1200)
        img = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(img)
        for _ in range(40):
            x0, y0 = rng.randrange(w), rng.randrange(h)
            d.ellipse([x0, y0, x0 + rng.randint(10, w // 2), y0 + rng.randint(10, h // 2)],
                      fill=tuple(rng.randrange(256) for _ in range(3)))
        bases.append(img)
    out = []
    for i in range(n):
        img = bases[i % len(bases)].copy()
        ImageDraw.Draw(img).text((5 + i % 50, 5), f"#{i}", fill=(0, 0, 0))  # distinct bytes per URL
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _serve(n: int, seed: int, ready, port_value):
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from webserver import Route, start_server

    routes = {f"/img/{i}.jpg": Route(body=b, content_type="image/jpeg") for i, b in enumerate(_make_images(n, seed))}
    server = start_server(routes)
    port_value.value = server.port
    ready.set()
    while True:
        time.sleep(3600)


def _timed(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--resize-mode", default="border")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1, help="processes on both sides")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    ready, port = mp.Event(), mp.Value("i", 0)
    server = mp.Process(target=_serve, args=(args.n, args.seed, ready, port), daemon=True)
    server.start()
    if not ready.wait(600):
        sys.exit("the loopback server did not start")
    base = f"http://127.0.0.1:{port.value}"
    work = tempfile.mkdtemp(prefix="clipcurate-bench-")
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    try:
        src = os.path.join(work, "urls.parquet")
        pq.write_table(pa.table({"url": [f"{base}/img/{i}.jpg" for i in range(args.n)],
                                 "caption": [f"picture number {i}" for i in range(args.n)]}), src)
        import json

        print(f"urls: {args.n}, workers: {args.workers}, threads: {args.threads}, image size: {args.image_size}, "
              f"resize: {args.resize_mode}")
        ratios = []
        for rep in range(args.repeat):
            i2d_out, cc_out = os.path.join(work, f"i2d{rep}"), os.path.join(work, f"cc{rep}")
            i2d = _timed([os.path.join(BIN, "img2dataset"), "--url_list", src, "--input_format", "parquet",
                          "--url_col", "url", "--caption_col", "caption", "--output_folder", i2d_out,
                          "--output_format", "webdataset", "--processes_count", str(args.workers),
                          "--thread_count", str(args.threads),
                          "--image_size", str(args.image_size), "--resize_mode", args.resize_mode,
                          "--number_sample_per_shard", "1000", "--distributor", "multiprocessing",
                          "--timeout", "10", "--retries", "0", "--enable_wandb", "False"], env)
            cc = _timed([os.path.join(BIN, "clipcurate"), "run", "--input", src, "--output", cc_out,
                         "--allow-private-network", "--threads", str(args.threads), "--workers", str(args.workers),
                         "--image-size", str(args.image_size), "--resize-mode", args.resize_mode,
                         "--samples-per-shard", "1000", "--timeout", "10", "--retries", "0",
                         "--no-near-dedup"], env)  # the copies differ only by a small label: near duplicates
            kept = json.load(open(os.path.join(cc_out, "stats.json")))["kept"]
            i2d_ok = sum(json.load(open(os.path.join(i2d_out, f)))["successes"]
                         for f in os.listdir(i2d_out) if f.endswith("_stats.json"))
            ratios.append((kept / cc) / (i2d_ok / i2d))
            print(f"run {rep + 1}: img2dataset {i2d:7.2f} s {i2d_ok:5d} images {i2d_ok / i2d:7.1f}/s | "
                  f"clipcurate {cc:7.2f} s {kept:5d} images {kept / cc:7.1f}/s | ratio {ratios[-1]:.2f}x", flush=True)
        print(f"ratio clipcurate / img2dataset: {', '.join(f'{r:.2f}x' for r in ratios)} (target >= 1.0x in every run)")
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
