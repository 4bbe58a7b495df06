"""The demo: a labelled seed set and a small noisy web of shape pictures, served on 127.0.0.1.

The web mixes what real alt-text data holds: right captions in web style,
captions of another shape (mismatches), bare labels, captions in German and
French, exact duplicate rows, the same picture at a second URL, and broken
URLs. Each row's ``truth`` column says which kind it is; it is carried
through the pipeline, so the result can be checked with ``clipcurate sql``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa

from clipcurate.pipeline.demo import synth

FOREIGN = {
    "de": ("{color} {label} Aufkleber für Kinder", "ein großes Bild mit einem {label} darauf", "einfaches {label} Symbol zum Herunterladen"),
    "fr": ("autocollant {label} pour enfants", "une image avec un grand {label} dessus", "symbole {label} simple à télécharger"),
}
FOREIGN_WORDS = {  # the shape names in German and French
    "de": {"circle": "Kreis", "square": "Quadrat", "triangle": "Dreieck", "star": "Stern", "heart": "Herz",
           "cross": "Kreuz", "ring": "Ring", "arrow": "Pfeil", "moon": "Mond", "hexagon": "Sechseck"},
    "fr": {"circle": "cercle", "square": "carré", "triangle": "triangle", "star": "étoile", "heart": "cœur",
           "cross": "croix", "ring": "anneau", "arrow": "flèche", "moon": "lune", "hexagon": "hexagone"},
}
GERMAN_COLORS = {"red": "roter", "orange": "oranger", "yellow": "gelber", "green": "grüner", "blue": "blauer",
                 "purple": "lila", "pink": "rosa", "brown": "brauner", "black": "schwarzer", "white": "weißer",
                 "gray": "grauer", "teal": "türkiser"}


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    labels: tuple = synth.LABELS[:10]
    seed_per_label: int = 100      # labelled seed images per label
    seed_image_size: int = 64
    web_images: int = 400          # distinct pictures on the web
    mismatch_fraction: float = 0.2
    label_only_fraction: float = 0.06
    foreign_fraction: float = 0.08
    duplicate_rows: int = 12
    same_picture_urls: int = 8
    broken_urls: int = 10


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        status, ctype, body = self.server.routes.get(self.path.split("?")[0], (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class WebServer(ThreadingHTTPServer):
    """A loopback server of fixed routes: path -> (status, content type, body)."""

    daemon_threads = True

    def __init__(self, routes: dict):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self):
        self.shutdown()
        self.server_close()


def make_web(config: DemoConfig) -> tuple[dict, list[dict]]:
    """(routes, rows): the web's files and its table of pairs (url as a path, caption, truth, label)."""
    rng = np.random.default_rng([config.seed, 7])
    labels = list(config.labels)
    routes, rows = {}, []
    for i in range(config.web_images):
        label = labels[int(rng.integers(len(labels)))]
        size = int(rng.integers(64, 160))
        image, drawn = synth.make_sample(label, rng, size)
        path = f"/img/{i:05d}.jpg"
        routes[path] = (200, "image/jpeg", synth.encode_jpeg(image, int(rng.integers(60, 96))))
        u = rng.random()
        if u < config.mismatch_fraction:
            other = labels[(labels.index(label) + 1 + int(rng.integers(len(labels) - 1))) % len(labels)]
            caption, truth = synth.make_web_caption(other, rng), "mismatch"
        elif u < config.mismatch_fraction + config.label_only_fraction:
            caption, truth = (label.capitalize() if rng.random() < 0.5 else label), "label_only"
        elif u < config.mismatch_fraction + config.label_only_fraction + config.foreign_fraction:
            lang = "de" if rng.random() < 0.5 else "fr"
            template = FOREIGN[lang][int(rng.integers(3))]
            caption = template.format(label=FOREIGN_WORDS[lang][label], color=GERMAN_COLORS.get(drawn["color"], ""))
            caption, truth = " ".join(caption.split()), f"foreign_{lang}"
        else:
            caption, truth = synth.make_web_caption(label, rng, color=drawn["color"]), "match"
        rows.append({"url": path, "caption": caption, "truth": truth, "shape": label})
    for j in range(config.duplicate_rows):
        rows.append(dict(rows[int(rng.integers(len(rows)))], truth="duplicate_row"))
    for j in range(config.same_picture_urls):
        src = rows[int(rng.integers(config.web_images))]
        path = f"/copy/{j:03d}.jpg"
        routes[path] = routes[src["url"]]
        rows.append(dict(src, url=path, truth="same_picture"))
    kinds = [("/broken/missing.jpg", None), ("/broken/page.jpg", (200, "image/jpeg", b"<html>not an image</html>")),
             ("/broken/empty.jpg", (200, "image/jpeg", b""))]
    for j in range(config.broken_urls):
        path, route = kinds[j % len(kinds)]
        path = path.replace(".jpg", f"{j}.jpg")
        if route is not None:
            routes[path] = route
        rows.append({"url": path, "caption": synth.make_web_caption(labels[j % len(labels)], rng), "truth": "broken",
                     "shape": labels[j % len(labels)]})
    order = rng.permutation(len(rows))
    return routes, [rows[int(k)] for k in order]


def pairs_table(rows: list[dict], base_url: str) -> pa.Table:
    return pa.Table.from_pylist([dict(r, url=base_url + r["url"]) for r in rows])
