"""Near dedup's precision and recall on real photos and scans, and on drawn shapes.

    .venv/bin/python benchmarks/near_dedup_quality.py [--distance 6] [--per-family 0]

Needs the ``bench`` extra (scikit-image, scikit-learn): the pictures are the photos that ship inside
scikit-image (``skimage/data/*.png|jpg``, ``lfw_subset.npy``: read from the package folder, never
fetched), scikit-learn's two sample photos and its handwritten digits (8x8 scans, upscaled), plus
shapes drawn with ``pipeline.media.draw``'s outlines.

Positives: every picture under each transformation (re-encoded as JPEG q20-95, WebP, PNG; resized
0.25-0.75x; cropped 5-10% a side; a border or padding; a small logo or caption; brighter or darker).
Negatives: every pair of distinct pictures, with look-alike families (the same digit by other
writers, the same shape at another place, size or colour, different products on white, different
faces, one scene from two viewpoints) counted on their own.

Every picture goes through the download stage's own ``ImageProcessor`` (default options: 256 px,
border) and then through the near-dedup stage's own code: the fingerprint of each row
(``near_print.fingerprint``), candidates by pHash distance, the confirmation
(``near_print.same_picture``) and the ``NearDecisions`` transform on the DirectRunner, with every
original ranked above its copies. A drop is right when the dropped row and the row it is a
near-duplicate of come from the same picture.
"""
from __future__ import annotations

import argparse
import collections
import io
import itertools
import math
import os
import sys
import tempfile
import time
import typing
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps


# --- pictures -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Picture:
    name: str
    kind: str           # photo, face, digit, shape, product
    group: str | None   # look-alike family member: pairs with the same group are look-alikes
    image: Image.Image  # RGB


def _skimage_dir() -> str:
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data")


# bundled with scikit-image (no pooch download); each read straight from the package folder
SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "clock_motion.png",
                  "coffee.png", "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
                  "hubble_deep_field.jpg", "ihc.png", "logo.png", "microaneurysms.png", "moon.png",
                  "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg", "text.png")
TILED = ("astronaut.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg")


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img).convert("RGB")
    return img.convert("RGB")


def photos() -> list[Picture]:
    from sklearn.datasets import load_sample_images

    out = []
    folder = _skimage_dir()
    for name in SKIMAGE_PHOTOS:
        with Image.open(os.path.join(folder, name)) as img:
            img = _rgb(img)
        group = "stereo" if name.startswith("motorcycle") else None
        out.append(Picture(name.split(".")[0], "photo", group, img))
        if name in TILED:  # quarters of the larger photos: more distinct photos
            w, h = img.size
            for i, (x, y) in enumerate(itertools.product((0, 1), (0, 1))):
                tile = img.crop((x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))
                out.append(Picture(f"{name.split('.')[0]}-q{i}", "photo", None, tile))
    for i, arr in enumerate(load_sample_images().images):
        img = Image.fromarray(arr)
        out.append(Picture(f"sklearn-{i}", "photo", None, img))
        w, h = img.size
        for j, (x, y) in enumerate(itertools.product((0, 1), (0, 1))):
            out.append(Picture(f"sklearn-{i}-q{j}", "photo", None,
                               img.crop((x * w // 2, y * h // 2, (x + 1) * w // 2, (y + 1) * h // 2))))
    return out


def faces(n: int) -> list[Picture]:
    """Faces of different people (scikit-image's bundled LFW subset, 25x25 grey), upscaled."""
    arr = np.load(os.path.join(_skimage_dir(), "lfw_subset.npy"))
    out = []
    for i in range(min(n, len(arr))):
        img = Image.fromarray((arr[i] * 255).astype(np.uint8)).resize((150, 150), Image.Resampling.BICUBIC)
        out.append(Picture(f"face-{i}", "face", "face", img.convert("RGB")))
    return out


def digit_scan(pixels: np.ndarray, size: int = 128) -> Image.Image:
    """An 8x8 scikit-learn digit (0-16, ink high) as a dark-on-white scan of ``size`` px."""
    ink = (pixels / 16.0 * 255).astype(np.uint8)
    img = Image.fromarray(255 - ink).resize((size, size), Image.Resampling.BICUBIC)
    return img.convert("RGB")


def digits(per_class: int) -> list[Picture]:
    from sklearn.datasets import load_digits

    data = load_digits()
    seen = collections.Counter()
    out = []
    for pixels, target in zip(data.images, data.target):
        if seen[target] >= per_class:
            continue
        seen[target] += 1
        out.append(Picture(f"digit{target}-{seen[target]}", "digit", f"digit{target}", digit_scan(pixels)))
    return out


def draw_shape(label: str, size: int, fg: tuple, bg: tuple, scale: float, cx: float, cy: float,
               angle: float = 0.0) -> Image.Image:
    """One shape (``draw``'s outlines) of ``label`` at (cx, cy), ``scale`` of the picture, on a plain background."""
    from clipcurate.pipeline.media import draw

    big = size * 3
    mask = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(mask)
    cos, sin = math.cos(angle), math.sin(angle)
    for poly, fill in draw._SHAPES[label]():  # the demo's own outlines
        d.polygon([((cx + scale * (x * cos - y * sin)) * big, (cy + scale * (x * sin + y * cos)) * big)
                   for x, y in poly], fill=fill)
    mask = mask.resize((size, size), Image.Resampling.LANCZOS)
    img = Image.new("RGB", (size, size), bg)
    img.paste(Image.new("RGB", (size, size), fg), (0, 0), mask)
    return img


def shapes(size: int = 200) -> list[Picture]:
    """Each shape as a base picture and three look-alikes: another colour, another place, another size.

    The variants differ by more than copies of them may (a crop or a border scales by at most 1.25x and
    moves the picture by at most 10%, and both pictures of a pair may be transformed): moved by a
    quarter of the width and height, or 2.2x smaller."""
    from clipcurate.pipeline.media import draw

    colours = list(draw.COLORS.values())
    out = []
    for i, label in enumerate(draw.LABELS):
        fg, other, bg = colours[i % 9], colours[(i + 4) % 9], (245, 245, 245) if i % 2 else colours[(i + 7) % 12]
        if fg == bg:
            bg = (245, 245, 245)
        angle = 0.3 * i
        group = f"shape-{label}"
        out.append(Picture(label, "shape", group, draw_shape(label, size, fg, bg, 0.22, 0.5, 0.5, angle)))
        out.append(Picture(f"{label}-colour", "shape", group, draw_shape(label, size, other, bg, 0.22, 0.5, 0.5, angle)))
        out.append(Picture(f"{label}-place", "shape", group, draw_shape(label, size, fg, bg, 0.22, 0.26, 0.27, angle)))
        out.append(Picture(f"{label}-size", "shape", group, draw_shape(label, size, fg, bg, 0.1, 0.5, 0.5, angle)))
    return out


PRODUCT_CROPS = (  # (photo, box): an object cut from a bundled photo (at most half of it), on a white background
    ("coffee.png", (120, 40, 470, 330)), ("chelsea.png", (60, 10, 300, 260)), ("rocket.jpg", (200, 0, 330, 300)),
    ("astronaut.png", (150, 0, 370, 220)), ("horse.png", (0, 0, 220, 328)), ("logo.png", (0, 0, 250, 250)),
    ("coins.png", (10, 10, 90, 90)), ("coins.png", (220, 190, 310, 280)), ("camera.png", (170, 50, 330, 400)),
    ("motorcycle_left.png", (80, 40, 420, 460)), ("color.png", (0, 0, 185, 185)), ("clock_motion.png", (70, 20, 330, 280)),
)


def products(size: int = 300) -> list[Picture]:
    """Different objects, each centred on a white background (a shop's product shots)."""
    folder = _skimage_dir()
    out = []
    for i, (name, box) in enumerate(PRODUCT_CROPS):
        with Image.open(os.path.join(folder, name)) as img:
            obj = _rgb(img).crop(box)
        obj.thumbnail((int(size * 0.6), int(size * 0.6)), Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(obj, ((size - obj.width) // 2, (size - obj.height) // 2))
        out.append(Picture(f"product-{i}-{name.split('.')[0]}", "product", "product", canvas))
    return out


def drawn(per_label: int = 4, seed: int = 0) -> list[Picture]:
    """Shapes as the demo web draws them (``pipeline.demo.synth.make_sample``: random colours, size,
    place, angle, 64-160 px): the same shape drawn again is a look-alike."""
    from clipcurate.pipeline.demo import synth

    rng = np.random.default_rng(seed)
    out = []
    for label in synth.LABELS:
        for i in range(per_label):
            img, _ = synth.make_sample(label, rng, int(rng.integers(64, 161)))
            out.append(Picture(f"{label}-drawn{i}", "drawn", f"drawn-{label}", img))
    return out


def all_pictures(per_digit: int = 8, n_faces: int = 40, per_drawn: int = 4) -> list[Picture]:
    return photos() + faces(n_faces) + digits(per_digit) + shapes() + drawn(per_drawn) + products()


# --- transformations ------------------------------------------------------------------------------

def encode(img: Image.Image, fmt: str = "JPEG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def _jpeg(img, q=85):
    return encode(img, "JPEG", quality=q)


def _resize(img, f):
    return img.resize((max(32, round(img.width * f)), max(32, round(img.height * f))), Image.Resampling.LANCZOS)


def _crop(img, left, top, right, bottom):
    w, h = img.size
    return img.crop((round(w * left), round(h * top), w - round(w * right), h - round(h * bottom)))


def _border(img, frac, colour):
    w, h = img.size
    return ImageOps.expand(img, border=max(1, round(max(w, h) * frac)), fill=colour)


def _pad_square(img, colour=(255, 255, 255)):
    side = max(img.size)
    canvas = Image.new("RGB", (side, side), colour)
    canvas.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    return canvas


def _pad_wide(img, colour=(0, 0, 0)):
    w, h = img.size
    canvas = Image.new("RGB", (round(w * 1.3), h), colour)
    canvas.paste(img, ((canvas.width - w) // 2, 0))
    return canvas


CORNERS = ((1, 1, 0, 0), (0, 1, 1, 0), (0, 0, 1, 1), (1, 0, 0, 1))  # which sides a corner crop cuts: l, t, r, b
SIDES = ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1))


def _logo(img, corner):
    """A small badge (about 12% of the width) in one corner."""
    out = img.copy()
    w, h = out.size
    s = max(6, round(min(w, h) * 0.12))
    m = max(2, s // 4)
    x0 = m if corner in (0, 3) else w - s - m
    y0 = m if corner in (0, 1) else h - s - m
    d = ImageDraw.Draw(out)
    d.rectangle((x0, y0, x0 + s, y0 + s), fill=(200, 30, 30))
    d.ellipse((x0 + s // 4, y0 + s // 4, x0 + 3 * s // 4, y0 + 3 * s // 4), fill=(255, 255, 255))
    return out


def _caption(img, top):
    """A short text caption on a strip along the bottom or the top (8% of the height)."""
    out = img.copy()
    w, h = out.size
    strip = max(6, round(h * 0.08))
    y0 = 0 if top else h - strip
    d = ImageDraw.Draw(out)
    d.rectangle((0, y0, w, y0 + strip), fill=(20, 20, 20))
    font = ImageFont.load_default()
    text = Image.new("L", (60, 12), 0)
    ImageDraw.Draw(text).text((1, 0), "example.com", fill=255, font=font)
    text = text.resize((max(1, round(strip * 5)), max(1, strip - 2)), Image.Resampling.NEAREST)
    out.paste(Image.new("RGB", text.size, (240, 240, 240)), (max(1, strip // 2), y0 + 1), text)
    return out


def _bright(img, f):
    return ImageEnhance.Brightness(img).enhance(f)


# name -> f(picture, its index): bytes. Where a transformation has a side or corner, the index picks it.
TRANSFORMS: dict[str, typing.Callable[[Image.Image, int], bytes]] = {
    "jpeg q20": lambda im, i: _jpeg(im, 20),
    "jpeg q50": lambda im, i: _jpeg(im, 50),
    "jpeg q95": lambda im, i: _jpeg(im, 95),
    "webp": lambda im, i: encode(im, "WEBP", quality=75),
    "png": lambda im, i: encode(im, "PNG"),
    "resize 0.25x": lambda im, i: _jpeg(_resize(im, 0.25)),
    "resize 0.5x": lambda im, i: _jpeg(_resize(im, 0.5)),
    "resize 0.75x": lambda im, i: _jpeg(_resize(im, 0.75)),
    "crop 5% a side": lambda im, i: _jpeg(_crop(im, .05, .05, .05, .05)),
    "crop 10% a side": lambda im, i: _jpeg(_crop(im, .1, .1, .1, .1)),
    "crop 10% at a corner": lambda im, i: _jpeg(_crop(im, *(.1 * c for c in CORNERS[i % 4]))),
    "crop 10% on one side": lambda im, i: _jpeg(_crop(im, *(.1 * c for c in SIDES[i % 4]))),
    "crop 7% left, 3% right": lambda im, i: _jpeg(_crop(im, .07, .02, .03, .05)),
    "border 5% black": lambda im, i: _jpeg(_border(im, .05, (0, 0, 0))),
    "border 10% white": lambda im, i: _jpeg(_border(im, .10, (255, 255, 255))),
    "pad to square": lambda im, i: _jpeg(_pad_square(im)),
    "pad wider, black": lambda im, i: _jpeg(_pad_wide(im)),
    "logo overlay": lambda im, i: _jpeg(_logo(im, i % 4)),
    "caption overlay": lambda im, i: _jpeg(_caption(im, i % 2 == 1)),
    "brighter +25%": lambda im, i: _jpeg(_bright(im, 1.25)),
    "darker -25%": lambda im, i: _jpeg(_bright(im, 0.75)),
}


# --- the run --------------------------------------------------------------------------------------

FAMILIES = {  # look-alike family of a picture's group
    "digit": "digit, other writer", "shape": "shape, other colour/place/size", "product": "products on white",
    "face": "faces, other person", "stereo": "one scene, two viewpoints", "drawn": "shape drawn again (the demo's)",
}


def family(p: Picture) -> str | None:
    if p.group is None:
        return None
    return FAMILIES[p.group.split("-")[0].rstrip("0123456789")]


@dataclass
class Item:
    source: int            # index of the picture
    transform: str | None  # None: the picture itself (JPEG q90)
    rank: int              # smaller is better (the stage's preference)
    keys: tuple
    thumb: bytes


def make_items(pictures: list[Picture], seed: int) -> tuple[list[Item], float]:
    from clipcurate.filters.near_print import fingerprint
    from clipcurate.pipeline.media.images import ImageProcessor

    processor = ImageProcessor()  # the download stage's defaults: 256 px, border mode
    rng = np.random.default_rng(seed)
    items, spent = [], 0.0
    for i, p in enumerate(pictures):
        for name, raw in [(None, _jpeg(p.image, 90))] + [(t, f(p.image, i)) for t, f in TRANSFORMS.items()]:
            out, drop = processor(raw)
            if drop is not None:
                print(f"  {p.name} / {name}: {drop.reason} {drop.message}", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            fp = fingerprint(out.data, (out.original_width, out.original_height))
            spent += time.perf_counter() - t0
            items.append(Item(i, name, 0, fp.keys, fp.thumb))
    for item, r in zip(items, rng.permutation(len(items))):
        item.rank = int(r)
    return items, spent / len(items)


def run_decisions(items: list[Item], config) -> dict[int, int]:
    """The stage's ``NearDecisions`` on the items: dropped item -> the item it is a near-duplicate of."""
    import re

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.pipeline.stages.dedup.near import NearDecisions

    summaries = [(f"r{k}", it.keys, (it.rank,), f"item{k}", it.thumb, None) for k, it in enumerate(items)]
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
            _ = (p | beam.Create(range(len(summaries)))
                 | beam.Map(lambda k: summaries[k]).with_output_types(typing.Any)
                 | NearDecisions(config)
                 | beam.MapTuple(lambda rid, dec: rid[1:] + " " + re.search(r"of item(\d+)", dec[1]).group(1))
                 | beam.io.WriteToText(os.path.join(tmp, "decisions")))
        lines = [line for f in sorted(os.listdir(tmp)) for line in open(os.path.join(tmp, f))]
    return {int(a): int(b) for a, b in (line.split() for line in lines)}


def candidate_pairs(items: list[Item], max_distance: int) -> np.ndarray:
    """(a, b) with a < b of every pair of items from different pictures whose keys are within the distance."""
    keys = np.array([it.keys for it in items], dtype=np.uint64)
    src = np.array([it.source for it in items])
    out = []
    for i in range(len(items) - 1):
        d = np.bitwise_count(keys[i][None, :, None] ^ keys[i + 1:][:, None, :]).reshape(len(items) - i - 1, -1).min(1)
        j = np.flatnonzero((d <= max_distance) & (src[i + 1:] != src[i]))
        out += [(i, i + 1 + int(x)) for x in j]
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  -  "


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--distance", type=int, default=None, help="--near-dedup-distance (default: the stage's)")
    ap.add_argument("--per-digit", type=int, default=8, help="scans of each digit")
    ap.add_argument("--faces", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from clipcurate.filters.near_print import same_picture
    from clipcurate.pipeline.stages.dedup.near import NearDedupConfig

    config = NearDedupConfig() if args.distance is None else NearDedupConfig(max_distance=args.distance)
    t0 = time.perf_counter()
    pictures = all_pictures(args.per_digit, args.faces)
    items, fp_s = make_items(pictures, args.seed)
    kinds = collections.Counter(p.kind for p in pictures)
    print(f"{len(pictures)} pictures ({', '.join(f'{n} {k}s' for k, n in sorted(kinds.items()))}), {len(items)} rows "
          f"with their copies; fingerprint {fp_s * 1000:.1f} ms a row; rule {config.rule}, distance {config.max_distance}")

    t1 = time.perf_counter()
    dropped = run_decisions(items, config)
    t_beam = time.perf_counter() - t1

    best_of = {}
    for k, it in enumerate(items):
        if it.source not in best_of or it.rank < items[best_of[it.source]].rank:
            best_of[it.source] = k
    redundant = {k for k, it in enumerate(items) if best_of[it.source] != k}

    def tally(select) -> tuple[int, int, int, int, int]:
        ks = [k for k in range(len(items)) if select(items[k])]
        red = [k for k in ks if k in redundant]
        drops = [k for k in ks if k in dropped]
        right = [k for k in drops if items[dropped[k]].source == items[k].source]
        lost = [k for k in drops if k not in redundant]  # the last row of a picture, dropped
        return len(red), len([k for k in red if k in dropped]), len(drops), len(right), len(lost)

    print(f"\nDecisions (NearDecisions on the DirectRunner, {t_beam:.0f} s): rows ranked at random; a copy is "
          f"found when dropped while a better-ranked row of its picture exists; a drop is right when the row "
          f"it names is the same picture; 'lost' = a picture's best row dropped for another picture")
    print(f"{'transformation':24s} {'rows':>5s} {'recall':>7s} {'drops':>6s} {'precision':>9s} {'lost':>5s}")
    names = ["(the picture itself)"] + list(TRANSFORMS)
    total = [0, 0, 0, 0, 0]
    for name in names:
        t = None if name.startswith("(") else name
        red, found, drops, right, lost = tally(lambda it: it.transform == t)
        total = [x + y for x, y in zip(total, (red, found, drops, right, lost))]
        print(f"{name:24s} {red:5d} {ratio(found, red):>7s} {drops:6d} {ratio(right, drops):>9s} {lost:5d}")
    red, found, drops, right, lost = total
    print(f"{'all':24s} {red:5d} {ratio(found, red):>7s} {drops:6d} {ratio(right, drops):>9s} {lost:5d}")
    print(f"{'removed that are copies':24s} {'':5s} {'':7s} {drops:6d} {ratio(drops - lost, drops):>9s}")
    print(f"\n{'kind of picture':24s} {'rows':>5s} {'recall':>7s} {'drops':>6s} {'precision':>9s} {'lost':>5s}")
    for kind in sorted(kinds):
        red, found, drops, right, lost = tally(lambda it: pictures[it.source].kind == kind)
        print(f"{kind:24s} {red:5d} {ratio(found, red):>7s} {drops:6d} {ratio(right, drops):>9s} {lost:5d}")

    # pairs of distinct pictures (and of their copies): how many the stage's two steps call near-duplicates
    t2 = time.perf_counter()
    pairs = candidate_pairs(items, config.max_distance)
    ok, _ = same_picture([items[a].thumb for a, _ in pairs], [items[b].thumb for _, b in pairs], config.rule)
    strict, _ = same_picture([items[a].thumb for a, _ in pairs], [items[b].thumb for _, b in pairs], config.label_rule)
    t_pairs = time.perf_counter() - t2
    n = len(items)
    by_family = collections.defaultdict(lambda: [0, 0, 0, 0, 0])  # pairs, originals' pairs, candidates, confirmed, label rule
    sources = collections.defaultdict(list)
    for k, it in enumerate(items):
        sources[it.source].append(k)
    for a_src, b_src in itertools.combinations(range(len(pictures)), 2):
        pa, pb = pictures[a_src], pictures[b_src]
        fam = family(pa) if pa.group and pa.group == pb.group else "unrelated"
        by_family[fam][0] += len(sources[a_src]) * len(sources[b_src])
        by_family[fam][1] += 1
    for (a, b), good, sure in zip(pairs, ok, strict):
        pa, pb = pictures[items[a].source], pictures[items[b].source]
        fam = family(pa) if pa.group and pa.group == pb.group else "unrelated"
        by_family[fam][2] += 1
        by_family[fam][3] += int(good)
        by_family[fam][4] += int(good and sure)
    print(f"\nPairs of different pictures, every row of one with every row of the other "
          f"({len(pairs):,} candidates confirmed in {t_pairs:.0f} s, {t_pairs / max(1, len(pairs)) * 1000:.2f} ms a pair)")
    print(f"{'family':34s} {'pictures':>8s} {'row pairs':>10s} {'candidates':>10s} {'confirmed':>9s} {'label rule':>10s}")
    for fam in list(FAMILIES.values()) + ["unrelated"]:
        if fam in by_family:
            pairs_, pics, cand, conf, lab = by_family[fam]
            print(f"{fam:34s} {pics:8d} {pairs_:10,d} {cand:10,d} {conf:9,d} {lab:10,d}")

    wrong = [(a, b) for (a, b), good in zip(pairs, ok) if good]
    if wrong:
        print("confirmed pairs of different pictures (picture / transformation):")
        for a, b in wrong[:20]:
            print(f"  {pictures[items[a].source].name} / {items[a].transform or '-'}  ~  "
                  f"{pictures[items[b].source].name} / {items[b].transform or '-'}")

    # the label rule on copies: what a bare-label row keeps when another label's row is a copy
    orig_pairs = [(sources[s][0], k) for s in sources for k in sources[s][1:] if items[sources[s][0]].transform is None]
    ok_o, _ = same_picture([items[a].thumb for a, _ in orig_pairs], [items[b].thumb for _, b in orig_pairs], config.rule)
    st_o, _ = same_picture([items[a].thumb for a, _ in orig_pairs], [items[b].thumb for _, b in orig_pairs],
                           config.label_rule)
    print(f"\nConfirmation alone on (picture, copy) pairs: default rule {ok_o.mean():.3f}, label rule {st_o.mean():.3f} "
          f"of {len(orig_pairs)}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
