"""WARC and WAT files written with warcio, read back into exact pairs; corrupt input becomes rejects."""
from __future__ import annotations

import io
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from clipcurate.pipeline.sources.warc import ReadWarc, WarcConfig, iter_pairs

PAGE = "http://example.com/a/page.html"
LATIN = "http://example.com/latin.html"
WAT_PAGE = "https://news.example.org/story/1"


def _response(writer, uri, body: bytes, content_type: str, status: str = "200 OK"):
    http = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http))


def _metadata(writer, uri, payload: bytes):
    writer.write_record(writer.create_warc_record(uri, "metadata", payload=io.BytesIO(payload),
                                                  warc_content_type="application/json"))


@pytest.fixture(scope="module")
def warc_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("warc") / "crawl.warc.gz")
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        w.write_record(w.create_warcinfo_record("crawl.warc.gz", {"software": "test"}))
        _response(w, PAGE, b"""<html><body>
            <img src="../img/kite.jpg" alt="Kite &amp; string">
            <figure><img src="/img/dog.jpg"><figcaption>A dog</figcaption></figure>
            <img src="data:image/gif;base64,R0lGOD" alt="inline"><img src="/img/none.jpg">
            </body></html>""", "text/html; charset=utf-8")
        _response(w, "http://example.com/photo.jpg", b'<img src="/x.jpg" alt="not html">', "image/jpeg")
        _response(w, "http://example.com/gone.html", b'<img src="/gone.jpg" alt="gone">', "text/html", "404 Not Found")
        w.write_record(w.create_warc_record(PAGE, "request", payload=io.BytesIO(b"GET /a/page.html HTTP/1.1\r\n\r\n"),
                                            http_headers=StatusAndHeaders("GET /a/page.html", [], protocol="HTTP/1.1",
                                                                          is_http_request=True)))
        _response(w, LATIN, '<img src="cafe.jpg" alt="Café">'.encode("latin-1"), "text/html; charset=iso-8859-1")
    return path


WARC_ROWS = [
    {"url": "http://example.com/img/kite.jpg", "caption": "Kite & string", "page_url": PAGE, "caption_source": "alt"},
    {"url": "http://example.com/img/dog.jpg", "caption": "A dog", "page_url": PAGE, "caption_source": "figcaption"},
    {"url": "http://example.com/cafe.jpg", "caption": "Café", "page_url": LATIN, "caption_source": "alt"},
]


def _wat_json(links, base=None) -> bytes:
    html_meta = {"Links": links, **({"Head": {"Base": base}} if base else {})}
    return json.dumps({"Envelope": {
        "WARC-Header-Metadata": {"WARC-Type": "response", "WARC-Target-URI": WAT_PAGE},
        "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": html_meta}},
    }}).encode()


@pytest.fixture(scope="module")
def wat_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("wat") / "crawl.warc.wat.gz")
    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=True)
        _metadata(w, WAT_PAGE, _wat_json([
            {"path": "A@/href", "url": "/other", "text": "a link"},
            {"path": "IMG@/src", "url": "../pics/sun.png", "alt": " The  sun &amp; sky "},
            {"path": "IMG@/src", "url": "/pics/no-alt.png"},
            {"path": "IMG@/src", "url": "data:image/png;base64,iVBOR", "alt": "inline"},
            {"path": "IMG@/src", "url": "https://cdn.example.net/moon.jpg", "alt": "Moon"},
        ]))
        _metadata(w, WAT_PAGE, b'{"Envelope": {"Payload-Metadata": ')  # cut-off JSON
        _metadata(w, WAT_PAGE, _wat_json([{"path": "IMG@/src", "url": "star.png", "alt": "Star"}],
                                         base="https://static.example.org/img/"))
    return path


WAT_ROWS = [
    {"url": "https://news.example.org/pics/sun.png", "caption": "The sun & sky", "page_url": WAT_PAGE,
     "caption_source": "alt"},
    {"url": "https://cdn.example.net/moon.jpg", "caption": "Moon", "page_url": WAT_PAGE, "caption_source": "alt"},
    {"url": "https://static.example.org/img/star.png", "caption": "Star", "page_url": WAT_PAGE,
     "caption_source": "alt"},
]


def _numbered(rows, path, skip=()):
    out, index = [], 0
    for row in rows:
        while index in skip:
            index += 1
        out.append(dict(row, source_file=path, source_row=index))
        index += 1
    return out


def _pairs(path):
    return [row for kind, row in iter_pairs(path) if kind == "pair"]


def _malformed(path):
    return [row for kind, row in iter_pairs(path) if kind == "malformed"]


def test_warc_response_records_give_exact_pairs(warc_file):
    assert [kind for kind, _ in iter_pairs(warc_file)] == ["pair"] * len(WARC_ROWS)
    assert _pairs(warc_file) == _numbered(WARC_ROWS, warc_file)


def test_wat_links_give_exact_pairs_and_a_bad_record_becomes_a_reject(wat_file):
    rejects = _malformed(wat_file)
    assert _pairs(wat_file) == _numbered(WAT_ROWS, wat_file, skip={2})
    assert len(rejects) == 1
    assert rejects[0]["source_row"] == 2 and rejects[0]["reason"] == "malformed_row"
    assert rejects[0]["stage"] == "ingest" and "JSON" in rejects[0]["error_message"]


def test_unreadable_files_end_in_a_reject_not_a_crash(warc_file, tmp_path):
    garbage = tmp_path / "garbage.warc"
    garbage.write_bytes(b"this is not a WARC file\n" * 10)
    rows = list(iter_pairs(str(garbage)))
    assert len(rows) == 1 and rows[0][0] == "malformed"
    assert rows[0][1]["reason"] == "malformed_row" and rows[0][1]["source_row"] == 0
    data = open(warc_file, "rb").read()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) - 20])  # the last gzip member (the Latin-1 page) is truncated
    rows = list(iter_pairs(str(cut)))
    assert [row for _, row in rows[:-1]] == _numbered(WARC_ROWS[:2], str(cut))
    assert rows[-1][0] == "malformed"
    assert rows[-1][1]["reason"] == "malformed_row" and rows[-1][1]["source_row"] == 2


def test_read_warc_transform_gives_batches_and_rejects(warc_file, wat_file, tmp_path):
    garbage = tmp_path / "garbage.warc.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    with TestPipeline() as p:
        pairs, rejects = p | ReadWarc(WarcConfig(files=(warc_file, wat_file, str(garbage)), batch_rows=2))
        rows = pairs | beam.FlatMap(lambda batch: batch.to_pylist())
        assert_that(rows, equal_to(_numbered(WARC_ROWS, warc_file) + _numbered(WAT_ROWS, wat_file, skip={2})))
        assert_that(rejects | beam.Map(lambda r: (r["source_file"], r["source_row"], r["reason"])),
                    equal_to([(wat_file, 2, "malformed_row"), (str(garbage), 0, "malformed_row")]),
                    label="rejects")
