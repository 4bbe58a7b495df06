"""Crawled pages and WARC files as the pipeline's first stage: pairs end in shards with their page."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from clipcurate.pipeline.cli import main as cli_main
from webserver import Route, make_jpeg, start_server


def _site():
    routes = {
        "/index.html": Route(body=b"""<html><body>
            <img src="img/a.jpg" alt="a red kite flying">
            <figure><img src="/img/b.jpg"><figcaption>blue boat on water</figcaption></figure>
            <a href="/more.html">more</a><a href="/private/x.html">private</a></body></html>""",
                             content_type="text/html"),
        "/more.html": Route(body=b'<img src="/img/c.jpg" alt="green tree in park">', content_type="text/html"),
        "/private/x.html": Route(body=b'<img src="/img/d.jpg" alt="secret">', content_type="text/html"),
        "/robots.txt": Route(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
    }
    for i, name in enumerate("abcd"):
        routes[f"/img/{name}.jpg"] = Route(body=make_jpeg(120, 90, seed=900 + i), content_type="image/jpeg")
    return start_server(routes)


def _pairs(out):
    return sorted(pq.read_table(out / "shards" / "00000.parquet").to_pylist(), key=lambda r: r["caption"])


def test_run_with_seeds_crawls_then_curates(tmp_path):
    site = _site()
    try:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(site.url("/index.html") + "\n")
        out = tmp_path / "out"
        assert cli_main(["run", "--seeds", str(seeds), "--output", str(out), "--allow-private-network"]) == 0
        pairs = _pairs(out)
        assert [(p["caption"], p["caption_source"]) for p in pairs] == [
            ("a red kite flying", "alt"), ("blue boat on water", "figcaption"), ("green tree in park", "alt")]
        assert pairs[0]["page_url"] == site.url("/index.html")
        assert site.hit_count("/private/x.html") == 0 and site.hit_count("/img/d.jpg") == 0
        stats = json.load(open(out / "stats.json"))
        assert stats["input_rows"] == 3 and stats["kept"] == 3
    finally:
        site.close()


def test_run_with_warc_reads_pages_then_downloads(tmp_path):
    site = _site()
    try:
        path = tmp_path / "crawl.warc.gz"
        with open(path, "wb") as f:
            w = WARCWriter(f, gzip=True)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            body = (f'<img src="{site.url("/img/a.jpg")}" alt="kite from warc">'
                    f'<img src="/img/none.jpg" alt="">').encode()
            w.write_record(w.create_warc_record(site.url("/page.html"), "response", payload=io.BytesIO(body),
                                                http_headers=http))
        out = tmp_path / "out"
        assert cli_main(["run", "--warc", str(path), "--output", str(out), "--allow-private-network"]) == 0
        pairs = _pairs(out)
        assert [(p["caption"], p["page_url"]) for p in pairs] == [("kite from warc", site.url("/page.html"))]
        assert json.load(open(out / "stats.json"))["accounted_for"]
    finally:
        site.close()
