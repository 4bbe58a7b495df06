"""Crawl HTML pages into image/alt-text pairs: extraction, links, the frontier, one site's crawl.

Extraction (``parse_page``) is a pure function over HTML text using the
stdlib ``html.parser``: an ``<img>``'s caption is its ``alt`` text, or where
``alt`` is missing or empty the ``<figcaption>`` of its enclosing
``<figure>``; images with neither, and ``data:`` URIs, are not pairs. URLs
resolve against the page URL and the first ``<base href>``. A
``<meta name="robots">`` opt-out (noai, noimageai, noindex, noimageindex)
drops the page's pairs; ``nofollow`` drops its links.

A crawl is per site (scheme + host + port): breadth-first from the site's
seeds, links followed on the same site only, at most ``max_depth`` links away
from a seed and ``max_pages`` fetches per site. Pages are fetched through
``fetch.Fetcher``, so every hop's address is checked and robots.txt (fetched
once per site, cached) is obeyed for pages, redirect hops and image URLs.
The pages fetched, and so the pairs, do not depend on timing: each BFS level
is fetched in parallel but processed in discovery order.
"""
from __future__ import annotations

import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Iterable, Optional

from clipcurate.filters.normalize import clean_caption, normalize_url
from clipcurate.pipeline import files as fs
from clipcurate.pipeline.net.fetch import OPT_OUT_DIRECTIVES, FetchConfig, Fetcher

HTML_TYPES = ("text/html", "application/xhtml+xml")
PAIR_COLUMNS = ("url", "caption", "page_url", "caption_source")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_SPACED_TAGS = frozenset({"br", "p", "div", "li", "span", "td", "th", "tr"})
_SKIPPED_TEXT = frozenset({"script", "style", "template"})


# ---------------------------------------------------------------- extraction


@dataclass(frozen=True)
class Pair:
    url: str
    caption: str
    page_url: str
    caption_source: str  # "alt" or "figcaption"
    position: int  # index of the <img> among the page's images
    page_language: Optional[str] = None  # declared: <html lang>, else <meta http-equiv>, else Content-Language

    def row(self) -> dict:
        row = {"url": self.url, "caption": self.caption, "page_url": self.page_url,
               "caption_source": self.caption_source}
        if self.page_language:  # a prior for the language stage (--language-page-prior)
            row["page_language"] = self.page_language
        return row


@dataclass(frozen=True)
class Page:
    pairs: tuple[Pair, ...]
    links: tuple[str, ...]  # absolute http(s) URLs, normalized, fragments stripped, in page order, each once


class _Figure:
    __slots__ = ("caption_parts",)

    def __init__(self):
        self.caption_parts: list[str] = []


class _PageParser(HTMLParser):
    """Collects raw images, links, <base href> and meta robots; resolution happens after the whole page."""

    def __init__(self, robots_names: frozenset):
        super().__init__(convert_charrefs=True)
        self.robots_names = robots_names
        self.base_href: Optional[str] = None
        self.images: list[tuple[str, Optional[str], Optional[_Figure]]] = []  # (src, alt, figure)
        self.hrefs: list[str] = []
        self.directives: set[str] = set()
        self.languages: list[str] = []  # <html lang>, <meta http-equiv="content-language">, in page order
        self._figures: list[_Figure] = []
        self._captions: list[_Figure] = []  # open <figcaption>s, innermost last
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = {k: v for k, v in reversed(attrs)}  # the first of repeated attributes wins, as in browsers
        if tag in _SKIPPED_TEXT:
            self._skip += 1
        elif tag == "base" and self.base_href is None and a.get("href"):
            self.base_href = a["href"]
        elif tag == "img":
            src = _image_src(a)
            if src:
                self.images.append((src, a.get("alt"), self._figures[-1] if self._figures else None))
        elif tag in ("a", "area") and a.get("href"):
            self.hrefs.append(a["href"])
        elif tag == "figure":
            self._figures.append(_Figure())
        elif tag == "figcaption" and self._figures:
            self._captions.append(self._figures[-1])
        elif tag == "meta" and (a.get("name") or "").strip().lower() in self.robots_names:
            self.directives.update(d.strip().lower() for d in (a.get("content") or "").split(","))
        elif tag == "meta" and (a.get("http-equiv") or "").strip().lower() == "content-language" and a.get("content"):
            self.languages.append(a["content"])
        elif tag == "html" and (a.get("lang") or a.get("xml:lang")):
            self.languages.insert(0, a.get("lang") or a.get("xml:lang"))
        if tag in _SPACED_TAGS and self._captions:
            self._captions[-1].caption_parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TEXT:
            self._skip = max(0, self._skip - 1)
        elif tag == "figure" and self._figures:
            self._figures.pop()
        elif tag == "figcaption" and self._captions:
            self._captions.pop()
        if tag in _SPACED_TAGS and self._captions:
            self._captions[-1].caption_parts.append(" ")

    def handle_data(self, data):
        if self._captions and not self._skip:
            self._captions[-1].caption_parts.append(data)


def _image_src(attrs: dict) -> Optional[str]:
    """``src``, or the first candidate of ``srcset`` when there is no ``src``."""
    src = (attrs.get("src") or "").strip()
    if src:
        return src
    srcset = (attrs.get("srcset") or "").strip()
    return srcset.split(",")[0].strip().split()[0] if srcset else None


def _resolve(base: str, ref: str) -> Optional[str]:
    try:
        return urllib.parse.urljoin(base, ref.strip())
    except ValueError:
        return None


def canonical_url(url: str) -> Optional[str]:
    """``url`` normalized (lower-case host, default port dropped, no fragment), or None if not http(s)."""
    clean, drop = normalize_url(url)
    return None if drop else clean


def site_of(url: str) -> Optional[str]:
    """scheme://host[:port] of a canonical URL (the unit a crawl stays within), or None."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def parse_page(html_text: str, page_url: str, base_url: Optional[str] = None,
               robots_token: str = "clipcurate", content_language: Optional[str] = None) -> Page:
    """The pairs and links of one HTML page.

    ``page_url`` is recorded on the pairs; URLs resolve against ``<base href>``
    resolved against ``base_url`` (the page's final URL after redirects;
    defaults to ``page_url``).
    """
    parser = _PageParser(frozenset({"robots", robots_token.lower()}))
    parser.feed(html_text)
    parser.close()
    base = base_url or page_url
    if parser.base_href:
        base = _resolve(base, parser.base_href) or base
    directives = parser.directives
    if "none" in directives:
        directives = directives | {"noindex", "nofollow"}
    declared = (parser.languages[0] if parser.languages else content_language or "").strip()[:35] or None
    pairs = [] if directives & OPT_OUT_DIRECTIVES else _pairs(parser.images, base, page_url, declared)
    links = [] if "nofollow" in directives else _links(parser.hrefs, base)
    return Page(tuple(pairs), tuple(links))


def _pairs(images, base: str, page_url: str, page_language: Optional[str] = None) -> list[Pair]:
    out = []
    for position, (src, alt, figure) in enumerate(images):
        if src.lower().startswith("data:"):
            continue
        url = _resolve(base, src)
        if not url:
            continue
        caption, source = clean_caption(alt), "alt"
        if not caption and figure is not None:
            caption, source = clean_caption("".join(figure.caption_parts)), "figcaption"
        if caption:
            out.append(Pair(url, caption, page_url, source, position, page_language))
    return out


def _links(hrefs, base: str) -> list[str]:
    out, seen = [], set()
    for href in hrefs:
        url = _resolve(base, href)
        url = canonical_url(urllib.parse.urldefrag(url)[0]) if url else None
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def is_html(content_type: Optional[str]) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in HTML_TYPES


def decode_html(body: bytes, content_type: Optional[str] = None) -> str:
    """Text of an HTML body: charset from the header, else from a <meta>, else UTF-8 (errors replaced)."""
    charset = None
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    if not charset:
        found = _META_CHARSET.search(body[:4096])
        charset = found.group(1).decode("ascii") if found else None
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # unknown charset name
        return body.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- seeds and the frontier


def read_seeds(path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(valid seeds as canonical URLs in file order, each once; lines that are not http(s) URLs).

    Blank lines and ``#`` comments are skipped. Raises OSError if the file cannot be read.
    """
    seeds, bad, seen = [], [], set()
    with fs.open_read(path) as f:
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        url = canonical_url(urllib.parse.urldefrag(text)[0])
        if url is None:
            bad.append(text)
        elif url not in seen:
            seen.add(url)
            seeds.append(url)
    return tuple(seeds), tuple(bad)


def site_sort_key(site: str) -> str:
    """Sites in this order give their pages in page_url order (a page URL is site + "/" + path)."""
    return site + "/"


def group_by_site(seeds: Iterable[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(site, its seeds in input order) for canonical seed URLs, sites in ``site_sort_key`` order."""
    groups: dict[str, list[str]] = {}
    for url in seeds:
        site = site_of(url)
        if site is not None:
            groups.setdefault(site, []).append(url)
    return [(site, tuple(groups[site])) for site in sorted(groups, key=site_sort_key)]


class Frontier:
    """Breadth-first frontier of one site: URLs by depth, each URL once, off-site URLs refused."""

    def __init__(self, site: str, seeds: Iterable[str], max_depth: int):
        self.site = site
        self.max_depth = max_depth
        self._seen: set[str] = set()
        self._levels: list[list[str]] = [[]]
        self.depth = 0
        for url in seeds:
            self.add(url, 0)

    def add(self, url: str, depth: int) -> bool:
        """Queue ``url`` at ``depth``; False if it is off-site, too deep or already known."""
        if depth > self.max_depth or url in self._seen or site_of(url) != self.site:
            return False
        self._seen.add(url)
        while len(self._levels) <= depth:
            self._levels.append([])
        self._levels[depth].append(url)
        return True

    def take(self, n: int) -> list[tuple[str, int]]:
        """Up to ``n`` (url, depth) from the shallowest non-empty level, in discovery order."""
        while self.depth < len(self._levels) and not self._levels[self.depth]:
            self.depth += 1
        if self.depth >= len(self._levels):
            return []
        level = self._levels[self.depth]
        batch, self._levels[self.depth] = level[:n], level[n:]
        return [(url, self.depth) for url in batch]


# ---------------------------------------------------------------- crawling one site


def default_fetch_config() -> FetchConfig:
    return FetchConfig(respect_robots_txt=True, max_bytes=5_000_000)


@dataclass(frozen=True)
class CrawlConfig:
    seeds: tuple[str, ...]  # canonical http(s) URLs (see read_seeds)
    source: str = "seeds"  # the seed file; Beam rows get source_file="crawl:<source>"
    max_depth: int = 5  # links followed from a seed (wget -r's default); 0 = the seeds only
    max_pages: int = 1000  # pages fetched per site (scheme + host + port)
    fetch: FetchConfig = field(default_factory=default_fetch_config)

    def __post_init__(self):
        if self.max_depth < 0:
            raise ValueError("max_depth must be >= 0")
        if self.max_pages < 1:
            raise ValueError("max_pages must be >= 1")

    @property
    def source_file(self) -> str:
        return f"crawl:{self.source}"


@dataclass
class CrawlStats:
    pages_fetched: int = 0  # answered 2xx (HTML or not)
    pages_failed: int = 0  # HTTP errors, timeouts, refused addresses, unparsable HTML, ...
    pages_not_html: int = 0
    pages_refused_robots: int = 0
    images_refused_robots: int = 0
    pairs: int = 0

    def add(self, other: "CrawlStats"):
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def robots_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: "MyBot/1.0 (+url)" -> "mybot"."""
    token = user_agent.strip().split("/")[0].split()
    return token[0].lower() if token else "clipcurate"


def crawl_site(site: str, seeds: Iterable[str], config: CrawlConfig, fetcher: Fetcher
               ) -> tuple[list[Pair], CrawlStats]:
    """Crawl one site breadth-first; pairs sorted by (page_url, position)."""
    frontier = Frontier(site, seeds, config.max_depth)
    stats = CrawlStats()
    pairs: list[Pair] = []
    allowed_images: dict[str, bool] = {}
    budget = config.max_pages
    workers = max(1, config.fetch.per_host_concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crawl") as pool:
        while budget > 0:
            batch = frontier.take(budget)
            if not batch:
                break
            allowed = [(url, depth) for url, depth in batch if fetcher.robots_allowed(url)]
            stats.pages_refused_robots += len(batch) - len(allowed)
            budget -= len(allowed)
            for (url, depth), result in zip(allowed, pool.map(fetcher.fetch, [u for u, _ in allowed])):
                page = _page_of(url, result, stats, config.fetch.user_agent_token)
                if page is None:
                    continue
                for link in page.links:
                    frontier.add(link, depth + 1)
                for pair in page.pairs:
                    if pair.url not in allowed_images:
                        allowed_images[pair.url] = fetcher.robots_allowed(pair.url)
                    if allowed_images[pair.url]:
                        pairs.append(pair)
                    else:
                        stats.images_refused_robots += 1
    pairs.sort(key=lambda p: (p.page_url, p.position))
    stats.pairs = len(pairs)
    return pairs, stats


def _page_of(url: str, result, stats: CrawlStats, token: str) -> Optional[Page]:
    if not result.ok:
        if result.drop.reason == "robots_disallowed":  # a redirect hop robots.txt disallows
            stats.pages_refused_robots += 1
        else:
            stats.pages_failed += 1
        return None
    stats.pages_fetched += 1
    if not is_html(result.content_type):
        stats.pages_not_html += 1
        return None
    text = decode_html(result.body, result.content_type)
    try:
        return parse_page(text, url, base_url=result.final_url or url, robots_token=token)
    except (ValueError, AssertionError, RecursionError):  # html.parser on pathological markup: skip the page
        stats.pages_failed += 1
        return None


def crawl(config: CrawlConfig) -> tuple[list[dict], CrawlStats]:
    """Crawl every site of ``config.seeds`` in turn: rows (``PAIR_COLUMNS``) in page_url, position order."""
    rows: list[dict] = []
    total = CrawlStats()
    with Fetcher(config.fetch) as fetcher:
        for site, seeds in group_by_site(config.seeds):
            pairs, stats = crawl_site(site, seeds, config, fetcher)
            rows.extend(p.row() for p in pairs)
            total.add(stats)
    return rows, total
