"""Near-duplicate pictures: what each row keeps of its picture, and the test that two are the same.

``fingerprint(image, original_size)`` describes a downloaded picture in two small parts:

- **keys**: 64-bit pHashes (``filters.phash``'s DCT, taken after the grey picture is multiplied by
  a fixed gentle ramp: a symmetric picture such as a centred circle has many DCT coefficients near
  zero, and without the ramp their bits flip under mere re-encoding) of the picture's content and of
  views of it a copy may show instead: the content with a plain frame trimmed (borders, padding,
  letterboxing), the centre 90% and 80%, and the four corners at 90% (a crop of 10% at a corner).
  Two pictures are *candidates* when some key of one lies within the distance of some key of the
  other. ``keys[0]`` (the whole content) is the row's ``phash``.
- **thumb**: a 32 x 32 RGB thumbnail of the content (3 KB): what the confirmation compares, so it
  never needs the images themselves.

The content: the download stage's letterbox bars (the plain bars a resize to a square adds, found
from the original's aspect and taken off only where they are plain) are not part of the picture.

``similarity(a, b)`` (batched over pairs of thumbnails) measures the alikeness of two thumbnails
after aligning them: a copy may be cropped (at most 12.5% a side) or framed (a border up to the
same), so each picture's crops on a 2.5% grid are matched to the other by their row and column
profiles, and the best few alignments in both directions are compared. For each it computes the
normalized cross-correlation of the colour pixels (per-channel means removed, one norm: a colour
change lowers it, a brightness change does not), also with one overlay zone left out (a strip of
12% along an edge, a quarter-size corner: where a caption or a logo goes), and keeps the best. Then,
for that alignment, ``centre``: the correlation of the inner 70% alone (two pictures that merely
share a frame or a plain background are told apart by what is inside), and ``residual``: the worst
4 x 4-pixel block of squared differences of the standardized pixels outside the zone (two scans of
a digit by different writers correlate at 0.98 overall, yet differ a lot where a stroke differs; a
copy differs a little everywhere), and ``colour``: the mean absolute difference of the colours
themselves, each picture divided by its mean brightness (the correlation removes each channel's
mean, so a grey circle and a green one on the same pink correlate at 0.99; their colours differ
by 0.3).

``same_picture`` applies the rule (see ``Rule``); its defaults come from
benchmarks/near_dedup_quality.py.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from clipcurate.filters.phash import LOW, SIZE, _dct_matrix

THUMB = 32
THUMB_BYTES = THUMB * THUMB * 3
# the views of a picture that get a key, besides the whole content and the trimmed frame:
# (left, top, right, bottom) fractions cut away
CROPS = (("c90", (.05, .05, .05, .05)), ("c80", (.1, .1, .1, .1)),
         ("tl", (.1, .1, 0, 0)), ("tr", (0, .1, .1, 0)), ("bl", (.1, 0, 0, .1)), ("br", (0, 0, .1, .1)))
KEY_NAMES = ("full", "trim") + tuple(name for name, _ in CROPS)


@dataclass(frozen=True)
class Fingerprint:
    keys: tuple[int, ...]  # 64-bit hashes, one for each of KEY_NAMES (equal values are kept: positions matter)
    thumb: bytes           # THUMB x THUMB x 3 RGB bytes of the content

    @property
    def phash(self) -> str:
        return f"{self.keys[0]:016x}"


# --- keys -------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _ramp() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return 1.0 + 0.6 * x / SIZE + 0.35 * y / SIZE


def key_of(grey: np.ndarray) -> int:
    """The 64-bit key of a SIZE x SIZE grey picture: pHash of the picture times a fixed ramp."""
    d = _dct_matrix()
    low = (d @ (grey * _ramp()) @ d.T)[:LOW, :LOW].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img).convert("RGB")
    return img.convert("RGB")


def content_box(img: Image.Image, original_size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """The part of ``img`` that is the picture: without the plain bars a resize to a square added
    (img2dataset's border mode), found from the original's aspect; the whole image otherwise."""
    w, h = img.size
    if not original_size or not all(original_size):
        return 0, 0, w, h
    ow, oh = original_size
    s = min(w / ow, h / oh)
    cw, ch = min(w, round(ow * s)), min(h, round(oh * s))
    if w - cw < 3 and h - ch < 3:
        return 0, 0, w, h
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    arr = np.asarray(img, dtype=np.int16)
    mask = np.ones((h, w), dtype=bool)
    mask[max(0, y0 - 2):y0 + ch + 2, max(0, x0 - 2):x0 + cw + 2] = False  # rounding: the edge may be a pixel off
    margin = arr[mask]
    if len(margin):
        plain = (np.abs(margin - np.median(margin, axis=0)).max(axis=1) <= 16).mean()
        if plain < 0.98:
            return 0, 0, w, h
    return x0, y0, x0 + cw, y0 + ch


def frame_box(arr: np.ndarray, tol: int = 24, plain: float = 0.97, cap: float = 0.3) -> tuple[int, int, int, int]:
    """``arr`` (H, W, 3) without a plain frame: on each side, the run of lines (rows or columns) whose
    pixels are nearly all (``plain``) within ``tol`` of that side's edge colour, at most ``cap`` of it."""
    h, w, _ = arr.shape

    def run(lines: np.ndarray) -> int:  # lines from the edge inwards: (n, length, 3)
        colour = np.median(lines[0], axis=0)
        ok = (np.abs(lines - colour).max(axis=2) <= tol).mean(axis=1) >= plain
        return int(np.argmin(ok)) if not ok.all() else len(ok)

    nh, nw = int(h * cap), int(w * cap)
    cols = arr.transpose(1, 0, 2)
    top, bottom = min(run(arr[:nh + 1]), nh), min(run(arr[::-1][:nh + 1]), nh)
    left, right = min(run(cols[:nw + 1]), nw), min(run(cols[::-1][:nw + 1]), nw)
    return left, top, w - right, h - bottom


def fingerprint(image: bytes, original_size: tuple[int, int] | None = None) -> Fingerprint:
    """The keys and thumbnail of encoded image bytes (``original_size``: the picture's size before the
    download resized it, which tells where its letterbox bars are)."""
    with Image.open(io.BytesIO(image)) as img:
        img.draft("RGB", (THUMB * 4, THUMB * 4))  # JPEG: decode at a reduced scale
        img = _rgb(img)
    content = img.crop(content_box(img, original_size))
    thumb = content.resize((THUMB, THUMB), Image.Resampling.BOX)
    grey = content.convert("L")
    w, h = grey.size

    def key(box) -> int:
        return key_of(np.asarray(grey.resize((SIZE, SIZE), Image.Resampling.BOX, box=box), dtype=np.float64))

    keys = [key((0, 0, w, h)), key(frame_box(np.asarray(content, dtype=np.int16)))]
    keys += [key((l * w, t * h, w - r * w, h - b * h)) for _, (l, t, r, b) in CROPS]
    return Fingerprint(tuple(keys), thumb.tobytes())


def key_distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """The smallest Hamming distance between a key of ``a`` and a key of ``b``."""
    return min((x ^ y).bit_count() for x in set(a) for y in set(b))


# --- the confirmation -------------------------------------------------------------------------------

GRID = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125)  # crop fractions a side the alignment tries
_SPANS = tuple((l, r) for l in GRID for r in GRID)
TOP_ALIGNMENTS = 2  # best profile matches per axis and direction that are compared in full


def _resample(l: float, r: float, n: int = THUMB) -> np.ndarray:
    """(n, n): the span [l, 1 - r] of a length-n signal, area-sampled back to n points."""
    edges = (l + (1 - l - r) * np.arange(n + 1) / n) * n
    m = np.zeros((n, n))
    for k in range(n):
        a, b = edges[k], edges[k + 1]
        for j in range(int(np.floor(a)), min(n, int(np.ceil(b)))):
            m[k, j] = min(b, j + 1) - max(a, j)
        m[k] /= m[k].sum()
    return m


@functools.lru_cache(maxsize=1)
def _tables():
    spans = np.stack([_resample(l, r) for l, r in _SPANS])  # (S, n, n)
    n, e, c = THUMB, round(THUMB * 0.12), THUMB // 4
    zones = [np.zeros((n, n), bool)]
    for rows, cols in ((slice(0, e), slice(None)), (slice(n - e, n), slice(None)), (slice(None), slice(0, e)),
                       (slice(None), slice(n - e, n)), (slice(0, c), slice(0, c)), (slice(0, c), slice(n - c, n)),
                       (slice(n - c, n), slice(0, c)), (slice(n - c, n), slice(n - c, n))):
        z = np.zeros((n, n), bool)
        z[rows, cols] = True
        zones.append(z)
    rim = np.ones((n, n), bool)
    rim[RIM:n - RIM, RIM:n - RIM] = False  # a crop on the grid may leave a sliver of a frame, or cut one
    keep = (~(np.stack(zones) | rim)).reshape(len(zones), n * n).astype(np.float64)  # (Z, q): pixels compared
    inner = round(THUMB * 0.15)
    centre = np.zeros((n, n))
    centre[inner:n - inner, inner:n - inner] = 1.0
    return spans, keep, centre.reshape(-1), _blur(n, SOFT), _blur(n, BLUR)


RIM = 2  # pixels along the edges left out of every comparison
SOFT = 1.0  # pixels: the Gaussian both thumbnails are compared after
BLUR = 0.8  # pixels: and the one the residual is taken after, on top (a copy's edges may be a pixel off)


def _blur(n: int, sigma: float) -> np.ndarray:
    """(n, n): a Gaussian blur of a length-n signal, edges mirrored."""
    radius = int(3 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    m = np.zeros((n, n))
    for i in range(n):
        for t, w in zip(range(i - radius, i + radius + 1), taps):
            j = -t - 1 if t < 0 else (2 * n - t - 1 if t >= n else t)
            m[i, j] += w
    return m


def thumbs(data: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(data), dtype=np.uint8).reshape(len(data), THUMB, THUMB, 3).astype(np.float64)


def _unit(v: np.ndarray) -> np.ndarray:
    v = v - v.mean(axis=-1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _views(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, V, n, n, 3): crops of each ``a`` that best match its ``b`` by row and column profiles."""
    spans = _tables()[0]
    k, n, pairs = TOP_ALIGNMENTS, THUMB, len(a)
    col = _unit(a.mean(axis=(1, 3)) @ spans.transpose(0, 2, 1))  # (S, P, n): x profile of each crop of a
    row = _unit(a.mean(axis=(2, 3)) @ spans.transpose(0, 2, 1))
    ix = np.argsort(-(col * _unit(b.mean(axis=(1, 3)))).sum(-1).T, axis=1, kind="stable")[:, :k]  # (P, k)
    iy = np.argsort(-(row * _unit(b.mean(axis=(2, 3)))).sum(-1).T, axis=1, kind="stable")[:, :k]
    ay = spans[iy] @ a.reshape(pairs, 1, n, n * 3)                      # rows cropped: (P, k, n, n*3)
    ay = ay.reshape(pairs, k, 1, n, n, 3).transpose(0, 1, 2, 3, 5, 4)  # (P, k, 1, n, 3, n)
    out = ay @ spans[ix].transpose(0, 1, 3, 2)[:, None, :, None]        # columns: (P, k, k, n, 3, n)
    return out.transpose(0, 1, 2, 3, 5, 4).reshape(pairs, k * k, n, n, 3)


def _zone_ncc(v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, V, Z): correlation of each view with its ``b`` over the pixels each zone leaves."""
    keep = _tables()[1]
    q = THUMB * THUMB
    v = v.reshape(v.shape[0], v.shape[1], q, 3)
    b = b.reshape(b.shape[0], 1, q, 3)
    n = keep.sum(axis=1)[:, None]
    sa, sb = keep @ v, keep @ b                      # (P, V, Z, 3), (P, 1, Z, 3)
    saa, sbb, sab = keep @ (v * v), keep @ (b * b), keep @ (v * b)
    cov = (sab - sa * sb / n).sum(-1)
    var = (saa - sa * sa / n).sum(-1) * (sbb - sb * sb / n).sum(-1)
    return cov / np.sqrt(np.maximum(var, 1e-9))


def _standard(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(P, Z, q, 3): the pixels ``x`` (P, 1, q, 3) standardized over each weighting (P, Z, q) (per-channel
    means, one deviation), zero where the weight is."""
    w = weight[..., None]
    m = (x * w).sum(axis=2, keepdims=True) / w.sum(axis=2, keepdims=True)
    d = (x - m) * w
    s = np.sqrt((d * d).sum(axis=(2, 3), keepdims=True) / (w.sum(axis=2, keepdims=True) * 3))
    return d / np.maximum(s, 1e-6)


CHUNK = 64  # pairs compared at once (bounds the memory of the views)


def _blurred(x: np.ndarray, blur: np.ndarray) -> np.ndarray:
    """(..., n, n, 3) blurred along both axes."""
    return np.einsum("ij,...jkc,lk->...ilc", blur, x, blur, optimize=True)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, 4): (alike, centre, residual, colour) of P pairs of thumbnails (P, n, n, 3) (see the module doc)."""
    if len(a) > CHUNK:
        return np.concatenate([similarity(a[i:i + CHUNK], b[i:i + CHUNK]) for i in range(0, len(a), CHUNK)])
    if not len(a):
        return np.zeros((0, 4))
    _, keep, centre, soft, blur = _tables()
    pairs, q, nb = len(a), THUMB * THUMB, THUMB // 4
    # a as it is and cropped to b, b cropped to a; all softened after (a crop resampled from 32 px is)
    va = _blurred(np.concatenate([a[:, None], _views(a, b)], axis=1), soft)
    vb = _blurred(_views(b, a), soft)
    a, b = _blurred(a, soft), _blurred(b, soft)
    both = np.concatenate([_zone_ncc(va, b), _zone_ncc(vb, a)], axis=1)  # (P, V, Z)
    best = both.max(axis=2)
    view = best.argmax(axis=1)
    alike = best[np.arange(pairs), view]
    from_a = view < va.shape[1]
    x = np.where(from_a[:, None, None, None], va[np.arange(pairs), np.minimum(view, va.shape[1] - 1)],
                 vb[np.arange(pairs), np.maximum(view - va.shape[1], 0)]).reshape(pairs, 1, q, 3)
    y = np.where(from_a[:, None, None], b.reshape(pairs, q, 3), a.reshape(pairs, q, 3)).reshape(pairs, 1, q, 3)
    # residual: for the best alignment and each zone left out, both standardized over the rest, their
    # difference there blurred; the worst block outside the zone; the zone that makes it least
    kz = np.broadcast_to(keep[None], (pairs,) + keep.shape)  # (P, Z, q)
    d = (_standard(x, kz) - _standard(y, kz)).reshape(pairs, len(keep), THUMB, THUMB, 3)
    r = (_blurred(d, blur) ** 2).sum(-1) * keep.reshape(1, len(keep), THUMB, THUMB)
    kept = keep.reshape(len(keep), nb, 4, nb, 4).sum(axis=(2, 4)).reshape(1, len(keep), nb * nb)
    blocks = r.reshape(pairs, len(keep), nb, 4, nb, 4).sum(axis=(3, 5)).reshape(pairs, len(keep), nb * nb)
    residual = np.where(kept >= 8, blocks / np.maximum(kept, 1), 0).max(axis=2).min(axis=1)  # blocks half kept or more
    c = np.broadcast_to(centre, (pairs, 1, q))
    inner = (_standard(x, c) * _standard(y, c)).sum(axis=(1, 2, 3)) / (centre.sum() * 3)
    # colour: the mean difference of the colours themselves, each picture scaled by its mean brightness
    # (a brighter copy is the same colour), over the pixels a zone leaves, the zone that makes it least
    w = kz[..., None]
    xn = x / np.maximum((x * w).sum(axis=(2, 3), keepdims=True) / (w.sum(axis=2, keepdims=True) * 3), 1.0)
    yn = y / np.maximum((y * w).sum(axis=(2, 3), keepdims=True) / (w.sum(axis=2, keepdims=True) * 3), 1.0)
    colour = ((np.abs(xn - yn) * w).sum(axis=(2, 3)) / (w.sum(axis=(2, 3)) * 3)).min(axis=1)
    return np.stack([alike, inner, residual, colour], axis=1)


@dataclass(frozen=True)
class Rule:
    """Two candidates are the same picture when, aligned, they correlate at ``min_alike`` or more, their
    inner parts at ``min_centre`` or more, no 4 x 4 block differs by more than ``max_residual``, and
    their colours (each scaled by its mean brightness) differ by ``max_colour`` or less on average."""

    min_alike: float = 0.96
    min_centre: float = 0.9
    max_residual: float = 0.3
    max_colour: float = 0.08

    def __post_init__(self):
        if not (0 < self.min_alike <= 1 and -1 <= self.min_centre <= 1 and self.max_residual > 0 and self.max_colour > 0):
            raise ValueError(f"near-dedup rule out of range: {self}")

    def holds(self, sims: np.ndarray) -> np.ndarray:
        return ((sims[:, 0] >= self.min_alike) & (sims[:, 1] >= self.min_centre) & (sims[:, 2] <= self.max_residual)
                & (sims[:, 3] <= self.max_colour))


def same_picture(a: list[bytes], b: list[bytes], rule: Rule = Rule()) -> tuple[np.ndarray, np.ndarray]:
    """For pairs of thumbnail bytes: (whether each pair is the same picture, their similarity rows)."""
    sims = similarity(thumbs(a), thumbs(b))
    return rule.holds(sims), sims
