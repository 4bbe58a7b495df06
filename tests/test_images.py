"""Image checks and normalization: each bad kind gets its reason, odd modes come out as sane RGB."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from clipcurate.pipeline.media.images import ImageConfig, ImageProcessor
from webserver import make_bomb_png, make_image, make_jpeg, make_png, truncate


@pytest.fixture(scope="module")
def proc():
    return ImageProcessor(ImageConfig(image_size=64, resize_mode="keep_ratio_largest"))


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def mean_rgb(data: bytes) -> np.ndarray:
    return np.asarray(decode(data).convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


def test_good_jpeg(proc):
    raw = make_jpeg(200, 100, seed=1)
    out, drop = proc(raw)
    assert drop is None
    assert (out.width, out.height, out.original_width, out.original_height) == (64, 32, 200, 100)
    assert out.sha256 == hashlib.sha256(raw).hexdigest()
    img = decode(out.data)
    assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 32)


@pytest.mark.parametrize("raw,reason", [
    (b"<!doctype html><html><body>hi</body></html>", "not_an_image"),
    (b"", "not_an_image"),
    (b"\x00" * 100, "not_an_image"),
    (make_bomb_png(), "decompression_bomb"),
    (make_bomb_png(10000, 9000), "decompression_bomb"),  # above our cap, under Pillow's own
    (make_jpeg(8, 8, seed=9), "image_too_small"),
    (make_png(300, 20), "image_too_small"),
    (truncate(make_jpeg(400, 300, seed=2), 0.6), "decode_error"),
    (truncate(make_jpeg(400, 300, seed=2), 0.95), "decode_error"),
    (truncate(make_png(200, 200, seed=3), 0.7), "decode_error"),
    (truncate(make_image(200, 200, "WEBP", seed=4), 0.6), "decode_error"),
    (make_jpeg(400, 300, seed=2)[:300], "decode_error"),  # header only
])
def test_bad_kinds(proc, raw, reason):
    out, drop = proc(raw)
    assert out is None and drop.reason == reason, drop


def test_truncated_progressive_jpeg(proc):
    raw = truncate(make_jpeg(400, 300, seed=5, progressive=True), 0.6)
    assert proc(raw)[1].reason == "decode_error"


def test_bad_kinds_from_the_server(web, proc):
    expected = {"/html.jpg": "not_an_image", "/truncated.jpg": "decode_error", "/bomb.png": "decompression_bomb",
                "/tiny.jpg": "image_too_small", "/empty.jpg": "not_an_image"}
    for path, reason in expected.items():
        assert proc(web.routes[path].body)[1].reason == reason, path
    assert proc(web.routes["/good.jpg"].body)[1] is None


def test_exif_rotation_swaps_width_and_height(proc):
    img = Image.new("RGB", (200, 100), (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, 100, 100))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    out, drop = proc(save(img, "JPEG", exif=exif, quality=95))
    assert drop is None
    assert (out.original_width, out.original_height) == (100, 200)
    assert (out.width, out.height) == (32, 64)
    arr = np.asarray(decode(out.data), dtype=np.int32)
    assert arr[5, 16, 2] > 150 and arr[-5, 16, 0] > 150  # blue on top, red at the bottom after rotation


def test_16bit_png_is_scaled_to_8bit(proc):
    ramp = (np.linspace(0, 65535, 100)[None, :].repeat(80, axis=0)).astype(np.uint16)
    raw = save(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16
    out, drop = proc(raw)
    assert drop is None and (out.original_width, out.original_height) == (100, 80)
    arr = np.asarray(decode(out.data).convert("RGB"), dtype=np.int32)
    assert arr[:, :3].mean() < 20 and arr[:, -3:].mean() > 235  # a black-to-white ramp, not clipped white


def test_16bit_rgb_png(proc):
    rgb16 = np.zeros((80, 100, 3), np.uint16)
    rgb16[..., 1] = 40000
    import cv2  # Pillow cannot write 16-bit RGB PNGs; cv2 (BGR order, green is green) can
    ok, enc = cv2.imencode(".png", rgb16)
    assert ok and enc.tobytes()[24] == 16
    out, drop = proc(enc.tobytes())
    assert drop is None
    r, g, b = mean_rgb(out.data)
    assert g > 130 and r < 30 and b < 30


def test_cmyk_jpeg(proc):
    img = Image.new("CMYK", (120, 90), (0, 255, 255, 0))  # pure red in CMYK
    out, drop = proc(save(img, "JPEG"))
    assert drop is None
    r, g, b = mean_rgb(out.data)
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency_goes_over_white(proc):
    img = Image.new("P", (100, 100), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 50, 100))  # left half red, right half index 0 = transparent black
    out, drop = proc(save(img, "PNG", transparency=0))
    assert drop is None
    arr = np.asarray(decode(out.data).convert("RGB"), dtype=np.int32)
    assert (arr[:, :28] - [255, 0, 0]).__abs__().mean() < 30  # red
    assert arr[:, -28:].mean() > 230  # white, not black


def test_rgba_png_goes_over_white(proc):
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    out, drop = proc(save(img, "PNG"))
    assert drop is None and mean_rgb(out.data).min() > 240


def test_animated_gif_takes_the_first_frame(proc):
    frames = [Image.new("RGB", (80, 80), c) for c in [(0, 200, 0), (200, 0, 0), (0, 0, 200)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out, drop = proc(buf.getvalue())
    assert drop is None and (out.width, out.height) == (64, 64)
    r, g, b = mean_rgb(out.data)
    assert g > 150 and r < 60 and b < 60


@pytest.mark.parametrize("mode", ["L", "1", "LA", "P"])
def test_other_modes_come_out_rgb(proc, mode):
    raw = make_png(90, 70, color=(128, 128, 128), mode=mode)
    out, drop = proc(raw)
    assert drop is None and decode(out.data).mode == "RGB"


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "GIF"])
def test_other_formats(proc, fmt):
    out, drop = proc(make_image(120, 60, fmt, color=(20, 40, 220)))
    assert drop is None and (out.width, out.height) == (64, 32)
    r, g, b = mean_rgb(out.data)
    assert b > 180 and r < 70


@pytest.mark.parametrize("mode,size,expected", [
    ("border", 64, (64, 64)),
    ("keep_ratio", 64, (192, 64)),
    ("keep_ratio_largest", 64, (64, 21)),
    ("center_crop", 64, (64, 64)),
    ("no", 64, (300, 100)),
])
def test_output_size_follows_resize_mode(mode, size, expected):
    out, drop = ImageProcessor(ImageConfig(image_size=size, resize_mode=mode))(make_jpeg(300, 100, seed=6))
    assert drop is None
    assert (out.width, out.height) == expected == decode(out.data).size


def test_border_pads_with_white():
    out, _ = ImageProcessor(ImageConfig(image_size=64, resize_mode="border"))(make_jpeg(300, 100, color=(0, 0, 0)))
    arr = np.asarray(decode(out.data), dtype=np.int32)
    assert arr[:5].mean() > 240 and arr[32].mean() < 20


def test_resize_only_if_bigger():
    cfg = ImageConfig(image_size=256, resize_mode="keep_ratio", resize_only_if_bigger=True)
    out, _ = ImageProcessor(cfg)(make_jpeg(100, 80, seed=7))
    assert (out.width, out.height) == (100, 80)


@pytest.mark.parametrize("fmt,magic", [("jpg", b"\xff\xd8"), ("png", b"\x89PNG"), ("webp", b"RIFF")])
def test_encode_format(fmt, magic):
    out, _ = ImageProcessor(ImageConfig(image_size=32, encode_format=fmt,
                                        encode_quality=5 if fmt == "png" else 90))(make_jpeg(64, 64))
    assert out.data.startswith(magic)


@pytest.mark.parametrize("kw", [{"resize_mode": "stretch"}, {"encode_format": "gif"}, {"image_size": 0},
                                {"encode_format": "png", "encode_quality": 95}])
def test_bad_config_is_refused_up_front(kw):
    with pytest.raises(ValueError):
        ImageConfig(**kw)


def test_threads_share_one_processor(proc):
    raws = [make_jpeg(100 + i, 80, seed=i) for i in range(16)] + [b"<html>"] * 4
    results = [None] * len(raws)

    def go(i):
        results[i] = proc(raws[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(raws))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r[1] is None for r in results[:16]) and all(r[1].reason == "not_an_image" for r in results[16:])


def test_stdout_survives_threaded_resizing(tmp_path):
    """img2dataset's resizer swaps fds 1 and 2 while it runs; concurrent calls must not lose stdout."""
    script = (
        "import io, threading, sys\n"
        f"sys.path.insert(0, {os.path.dirname(__file__)!r})\n"
        "from webserver import make_jpeg\n"
        "from clipcurate.pipeline.media.images import ImageProcessor\n"
        "p = ImageProcessor(); raw = make_jpeg(300, 200)\n"
        "ts = [threading.Thread(target=lambda: [p(raw) for _ in range(10)]) for _ in range(8)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print('still here', flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    assert done.returncode == 0, done.stderr
    assert "still here" in done.stdout


def test_plain_rgb_png_passes_through_the_completeness_check():
    from webserver import make_png

    from clipcurate.pipeline.media.images import ImageConfig, ImageProcessor

    image, drop = ImageProcessor(ImageConfig(image_size=64))(make_png(320, 320, seed=5))
    assert drop is None and (image.original_width, image.original_height) == (320, 320)


def test_resizes_run_in_parallel_threads_and_leave_stdout_and_stderr_alone():
    """16 threads resizing at once give the serial results, and fds 1 and 2 still point where they did
    (img2dataset's own fd swap, which made this unsafe, is not used)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from clipcurate.pipeline.media import draw
    from clipcurate.pipeline.media.images import ImageConfig, ImageProcessor

    rng = np.random.default_rng(5)
    raws = [draw.encode_jpeg(draw.make_image(draw.LABELS[i % len(draw.LABELS)], rng, 300)) for i in range(64)]
    processor = ImageProcessor(ImageConfig(image_size=64))
    before = [os.fstat(fd) for fd in (1, 2)]
    serial = [processor(r)[0].data for r in raws]
    with ThreadPoolExecutor(16) as pool:
        parallel = [p[0].data for p in pool.map(processor, raws * 4)]
    assert parallel == serial * 4
    after = [os.fstat(fd) for fd in (1, 2)]
    assert [(s.st_dev, s.st_ino) for s in after] == [(s.st_dev, s.st_ino) for s in before]


@pytest.mark.parametrize("mode", ["border", "keep_ratio", "center_crop", "keep_ratio_largest"])
def test_resizer_with_transforms_made_once_gives_img2dataset_s_own_bytes(mode):
    """Our copy of img2dataset's Resizer builds each albumentations transform once per thread and
    reuses it; its pictures are byte for byte those of img2dataset's own, unpatched Resizer, in many
    threads at once and for pictures of different sizes one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    import img2dataset.resizer as theirs

    from clipcurate.pipeline.imports import Resizer

    raws = [make_jpeg(w, h, seed=i) for i, (w, h) in enumerate([(640, 480), (300, 900), (1200, 700), (90, 60)] * 4)]
    kwargs = dict(image_size=128, resize_mode=mode, resize_only_if_bigger=False, encode_format="jpg", encode_quality=95)
    ours, reference = Resizer(**kwargs), theirs.Resizer(**kwargs)
    expected = [reference(io.BytesIO(r))[:5] for r in raws]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda r: ours(io.BytesIO(r))[:5], raws * 3))
    assert got == expected * 3


def test_many_download_threads_resize_only_resize_slots_images_at_once(tmp_path):
    """16 threads fetch, but at most ``resize_slots`` images are decoded and resized at a time (the
    resize is CPU work: more at once than CPUs only costs time); every row still comes out."""
    from concurrent.futures import ThreadPoolExecutor

    from clipcurate.pipeline.stages.download import DownloadConfig, ImageFetcher

    rows = []
    for i in range(48):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(make_jpeg(400, 300, seed=i))
        rows.append({"key": str(i), "url": str(path), "local_path": str(path), "caption": "x"})
    fetcher = ImageFetcher(DownloadConfig(local_root=str(tmp_path), resize_slots=2))
    inner, lock, now, peak = fetcher.processor, threading.Lock(), [0], [0]

    def counted(raw):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            return inner(raw)
        finally:
            with lock:
                now[0] -= 1

    fetcher.processor = counted
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fetcher, rows))
    fetcher.close()
    assert all(drop is None for _, drop in results) and len(results) == 48
    assert peak[0] == 2
