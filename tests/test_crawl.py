"""The crawler against a small loopback site: exact pairs, robots.txt, site boundary, budgets, CLI, Beam."""
from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from clipcurate.pipeline import cli
from clipcurate.pipeline.sources.crawler import CrawlConfig, Frontier, crawl, parse_page
from clipcurate.pipeline.sources.crawl import Crawl
from clipcurate.pipeline.net.fetch import FetchConfig
from webserver import Route, start_server

HTML = "text/html; charset=utf-8"
FETCH = FetchConfig(allow_private_network=True, respect_robots_txt=True, timeout=5.0, retries=0)


def _page(body: str) -> Route:
    return Route(body=f"<!doctype html><html><body>{body}</body></html>".encode(), content_type=HTML)


@pytest.fixture(scope="module")
def site():
    other = start_server({"/elsewhere.html": _page('<img src="/o.jpg" alt="off-site image">')})
    routes = {
        "/robots.txt": Route(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
        "/index.html": _page(f"""
            <img src="img/a.jpg" alt="A red &amp; blue   kite">
            <figure><img src="/img/b.jpg"><figcaption>A  dog
              on a <em>beach</em></figcaption></figure>
            <figure><figcaption>Empty alt, caption first</figcaption><img src="/img/c.jpg" alt="  "></figure>
            <figure><img src="/img/alt-wins.jpg" alt="Alt wins"><figcaption>not used</figcaption></figure>
            <img src="/img/none.jpg">
            <img src="data:image/png;base64,iVBORw0KGgo=" alt="inline image">
            <img src="/private/secret.jpg" alt="a secret image">
            <a href="sub/page2.html#top">two</a> <a href="/private/hidden.html">hidden</a>
            <a href="{other.url('/elsewhere.html')}">elsewhere</a> <a href="mailto:me@example.com">mail</a>
            <a href="javascript:void(0)">js</a> <a href="/index.html">self</a> <a href="/doc.pdf">pdf</a>
            <a href="/missing.html">404</a>"""),
        "/sub/page2.html": Route(body=b"""<html><head><base href="/assets/"></head><body>
            <img src="d.jpg" alt="Caf&eacute; resolved against base">
            <a href="../sub/page3.html">three</a></body></html>""", content_type=HTML),
        "/sub/page3.html": _page('<img src="/img/deep.jpg" alt="Deep"><a href="/sub/page4.html">four</a>'),
        "/sub/page4.html": _page('<img src="/img/too-deep.jpg" alt="Too deep">'),
        "/private/hidden.html": _page('<img src="/img/hidden.jpg" alt="hidden page image">'),
        "/doc.pdf": Route(body=b'<img src="/img/pdf.jpg" alt="not html">', content_type="application/pdf"),
    }
    server = start_server(routes)
    server.other = other
    server.companions.append(other)
    yield server
    server.close()


def expected_rows(site) -> list[dict]:
    index, page2, page3 = site.url("/index.html"), site.url("/sub/page2.html"), site.url("/sub/page3.html")
    return [
        {"url": site.url("/img/a.jpg"), "caption": "A red & blue kite", "page_url": index, "caption_source": "alt"},
        {"url": site.url("/img/b.jpg"), "caption": "A dog on a beach", "page_url": index,
         "caption_source": "figcaption"},
        {"url": site.url("/img/c.jpg"), "caption": "Empty alt, caption first", "page_url": index,
         "caption_source": "figcaption"},
        {"url": site.url("/img/alt-wins.jpg"), "caption": "Alt wins", "page_url": index, "caption_source": "alt"},
        {"url": site.url("/assets/d.jpg"), "caption": "Café resolved against base", "page_url": page2,
         "caption_source": "alt"},
        {"url": site.url("/img/deep.jpg"), "caption": "Deep", "page_url": page3, "caption_source": "alt"},
    ]


def test_crawl_gives_exactly_the_expected_pairs_and_obeys_robots_and_site(site):
    rows, stats = crawl(CrawlConfig(seeds=(site.url("/index.html"),), max_depth=2, fetch=FETCH))
    assert rows == expected_rows(site)
    assert site.hit_count("/private/hidden.html") == 0 and site.hit_count("/private/secret.jpg") == 0
    assert site.other.hits == []
    assert site.hit_count("/robots.txt") == 1
    assert site.hit_count("/sub/page4.html") == 0  # depth 3
    assert site.hit_count("/index.html") == 1  # the self-link is not fetched again
    assert site.hit_count("/img/a.jpg") == 0  # images are not downloaded by the crawl
    assert (stats.pages_refused_robots, stats.images_refused_robots) == (1, 1)
    assert (stats.pages_fetched, stats.pages_not_html, stats.pages_failed) == (4, 1, 1)


@pytest.fixture(scope="module")
def tree():
    """index -> p1..p5, each p<i> -> p<i>-a, p<i>-b."""
    routes = {"/": _page("".join(f'<a href="/p{i}"><img src="/i{i}.jpg" alt="image {i}"></a>' for i in range(1, 6)))}
    for i in range(1, 6):
        links = f'<a href="/p{i}-a">a</a><a href="/p{i}-b">b</a>'
        routes[f"/p{i}"] = _page(f'<img src="/i{i}x.jpg" alt="inner {i}">{links}')
        for leaf in "ab":
            routes[f"/p{i}-{leaf}"] = _page(f'<img src="/leaf{i}{leaf}.jpg" alt="leaf {i}{leaf}">')
    server = start_server(routes)
    yield server
    server.close()


def _fetched(server) -> set[str]:
    return {path for path in server.hits if path != "/robots.txt"}


def test_max_pages_takes_the_first_pages_breadth_first(tree):
    before = len(tree.hits)
    rows, stats = crawl(CrawlConfig(seeds=(tree.url("/"),), max_pages=3, fetch=FETCH))
    assert set(tree.hits[before:]) - {"/robots.txt"} == {"/", "/p1", "/p2"}
    assert stats.pages_fetched == 3
    assert [r["caption"] for r in rows] == [f"image {i}" for i in range(1, 6)] + ["inner 1", "inner 2"]


def test_max_depth_bounds_the_links_followed(tree):
    before = len(tree.hits)
    _, stats = crawl(CrawlConfig(seeds=(tree.url("/"),), max_depth=1, fetch=FETCH))
    assert set(tree.hits[before:]) - {"/robots.txt"} == {"/"} | {f"/p{i}" for i in range(1, 6)}
    before = len(tree.hits)
    rows, _ = crawl(CrawlConfig(seeds=(tree.url("/"),), max_depth=0, fetch=FETCH))
    assert set(tree.hits[before:]) - {"/robots.txt"} == {"/"}
    assert len(rows) == 5


def test_robots_group_for_our_agent_token_wins_over_star():
    robots = b"User-agent: mybot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
    with start_server({"/robots.txt": Route(body=robots, content_type="text/plain"),
                       "/": _page('<img src="/a.jpg" alt="a">')}) as server:
        mine = FetchConfig(allow_private_network=True, respect_robots_txt=True, user_agent="MyBot/2.0 (+x)",
                           user_agent_token="mybot")
        rows, stats = crawl(CrawlConfig(seeds=(server.url("/"),), fetch=mine))
        assert rows == [] and stats.pages_refused_robots == 1 and server.hit_count("/") == 0
        rows, _ = crawl(CrawlConfig(seeds=(server.url("/"),), fetch=FETCH))
        assert [r["caption"] for r in rows] == ["a"]


def test_meta_robots_opt_out_and_nofollow():
    html = '<meta name="robots" content="noimageindex"><img src="/a.jpg" alt="a"><a href="/b">b</a>'
    page = parse_page(html, "http://example.com/")
    assert page.pairs == () and page.links == ("http://example.com/b",)
    page = parse_page('<meta name="clipcurate" content="nofollow"><img src="/a.jpg" alt="a"><a href="/b">b</a>',
                      "http://example.com/")
    assert [p.caption for p in page.pairs] == ["a"] and page.links == ()


def test_frontier_refuses_off_site_deep_and_known_urls():
    frontier = Frontier("http://a.com", ["http://a.com/", "http://b.com/"], max_depth=1)
    assert not frontier.add("http://a.com/", 1)
    assert not frontier.add("http://a.com:8080/x", 1)
    assert not frontier.add("http://a.com/deep", 2)
    assert frontier.add("http://a.com/x", 1)
    assert frontier.take(5) == [("http://a.com/", 0)]
    assert frontier.take(5) == [("http://a.com/x", 1)]
    assert frontier.take(5) == []


def test_beam_crawl_numbers_rows_like_the_table(site, tree):
    seeds = (tree.url("/"), site.url("/index.html"))
    config = CrawlConfig(seeds=seeds, source="seeds.txt", max_depth=2, fetch=FETCH)
    table_rows, _ = crawl(config)
    expected = [dict(r, source_file="crawl:seeds.txt", source_row=i) for i, r in enumerate(table_rows)]
    assert len(expected) == 6 + 5 + 5 + 10
    with TestPipeline() as p:
        assert_that(p | Crawl(config), equal_to(expected))


def _cli(*args, cwd):
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([sys.executable, "-m", "clipcurate.pipeline.cli", "crawl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_the_pairs_table(site, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"# the test site\n\n{site.url('/index.html')}\nnot a url\n")
    out = tmp_path / "out" / "pairs.parquet"
    done = _cli("--seeds", str(seeds), "--output", str(out), "--allow-private-network", "--max-depth", "2",
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert pq.read_table(out).to_pylist() == expected_rows(site)
    assert "6 pairs" in done.stdout and "1 pages and 1 images refused by robots.txt" in done.stdout
    assert "not a url" in done.stderr
    assert os.listdir(out.parent) == ["pairs.parquet"]


def test_cli_errors_are_one_line_usage_errors(tmp_path, capsys):
    out = str(tmp_path / "p.parquet")
    assert cli.main(["crawl", "--seeds", str(tmp_path / "nope.txt"), "--output", out]) == 2
    assert "seeds file" in capsys.readouterr().err
    empty = tmp_path / "seeds.txt"
    empty.write_text("# nothing\nftp://example.com/\n")
    assert cli.main(["crawl", "--seeds", str(empty), "--output", out]) == 2
    err = capsys.readouterr().err
    assert "holds no http(s) URL" in err and "ftp://example.com/" in err and len(err.splitlines()) == 1
    assert cli.main(["crawl", "--seeds", str(empty), "--output", str(tmp_path)]) == 2
    assert not os.path.exists(out)


def test_default_depth_reaches_pages_five_links_from_the_seed(tmp_path):
    """With the defaults, --max-pages is the real bound: a chain of pages 5 links deep is all crawled
    (the sixth page is past the default depth, as with wget -r)."""
    routes = {f"/c{i}": _page(f'<img src="/chain{i}.jpg" alt="chain picture {i}"><a href="/c{i + 1}">next</a>')
              for i in range(7)}
    server = start_server(routes)
    try:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(server.url("/c0") + "\n")
        out = tmp_path / "pairs.parquet"
        assert cli.main(["crawl", "--seeds", str(seeds), "--output", str(out), "--allow-private-network"]) == 0
        captions = sorted(pq.read_table(out).column("caption").to_pylist())
        assert captions == [f"chain picture {i}" for i in range(6)]
    finally:
        server.close()
