"""The download path against the loopback server: every bad kind ends in its reason, nothing hangs."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from clipcurate.pipeline.net.fetch import FetchConfig, Fetcher, address_is_public
from webserver import Route, make_jpeg, start_server

HANG_SLACK = 2.0  # a bound on hanging, not a speed target


def local(**kw) -> Fetcher:
    """A fetcher allowed to reach the loopback server."""
    kw.setdefault("timeout", 5.0)
    return Fetcher(FetchConfig(allow_private_network=True, **kw))


def unique(prefix: str) -> str:
    return f"/{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def fetcher():
    f = local()
    yield f
    f.close()


def test_good_image(web, fetcher):
    r = fetcher.fetch(web.url("/good.jpg"))
    assert r.drop is None and r.ok
    assert r.status == 200 and r.content_type == "image/jpeg"
    assert r.body == web.routes["/good.jpg"].body
    assert r.final_url == web.url("/good.jpg") and r.attempts == 1


def test_user_agent_is_sent(web, fetcher):
    seen = {}

    def record(req, srv, n):
        seen["ua"] = req.headers.get("User-Agent")
        req._send(200, b"x", [])

    url = web.add_route(unique("ua"), Route(handler=record))
    fetcher.fetch(url)
    assert seen["ua"] == FetchConfig().user_agent


def test_404_is_http_error_and_not_retried(web):
    path = unique("gone")
    url = web.add(path, status=404, body=b"no")
    r = local(retries=3).fetch(url)
    assert r.drop.reason == "http_error" and r.drop.message == "HTTP 404"
    assert r.status == 404 and r.attempts == 1
    assert web.hit_count(path) == 1


def test_redirect_followed(web, fetcher):
    r = fetcher.fetch(web.url("/redirect"))
    assert r.ok and r.final_url == web.url("/good.jpg")
    assert r.body == web.routes["/good.jpg"].body
    assert fetcher.fetch(web.url("/redirect-abs")).final_url == web.url("/good.png")


def test_redirect_to_html_is_fetched_as_is(web, fetcher):
    # The download succeeds; the image stage rejects the bytes as not_an_image.
    r = fetcher.fetch(web.url("/redirect-html"))
    assert r.ok and r.content_type == "text/html" and r.body.startswith(b"<html>")


def test_redirect_loop(web, fetcher):
    r = fetcher.fetch(web.url("/loop-a"))
    assert r.drop.reason == "too_many_redirects"
    assert web.hit_count("/loop-a") <= 2


def test_redirect_chain_longer_than_allowed(web):
    paths = [unique("hop") for _ in range(4)]
    for here, there in zip(paths, paths[1:]):
        web.add(here, status=302, headers=[("Location", there)])
    web.add(paths[-1], body=b"end")
    assert local(max_redirects=2).fetch(web.url(paths[0])).drop.reason == "too_many_redirects"
    assert local(max_redirects=3).fetch(web.url(paths[0])).body == b"end"


@pytest.mark.parametrize("path", ["/redirect-file", "/redirect-ftp"])
def test_redirect_to_other_scheme_is_bad_redirect(web, fetcher, path):
    assert fetcher.fetch(web.url(path)).drop.reason == "bad_redirect"


def test_redirect_to_other_port(web, fetcher):
    r = fetcher.fetch(web.url("/redirect-other-port"))
    assert r.ok and r.final_url == web.other.url("/other.jpg")


def test_private_address_refused_before_connecting(web):
    path = unique("private")
    web.add(path, body=b"secret")
    f = Fetcher(FetchConfig(timeout=5))
    r = f.fetch(web.url(path))
    assert r.drop.reason == "private_address"
    assert web.hit_count(path) == 0
    r = f.fetch(f"http://localhost:{web.port}{path}")
    assert r.drop.reason == "private_address"
    assert web.hit_count(path) == 0


def test_private_literal_addresses_refused():
    """Loopback, private, link-local (cloud metadata), IPv6 and IPv4-mapped forms are all refused."""
    f = Fetcher(FetchConfig(timeout=5))
    for url in ["http://10.1.2.3/x.jpg", "http://169.254.169.254/latest/meta-data", "http://[::1]/x",
                "http://[::ffff:127.0.0.1]/x", "http://0.0.0.0/x", "http://[2002:7f00:1::]/x",
                "http://[64:ff9b::7f00:1]/x", "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x"]:
        assert f.fetch(url).drop.reason == "private_address", url


@pytest.mark.parametrize("ip,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("192.168.1.1", False), ("172.16.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
    ("224.0.0.1", False), ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
    ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True), ("240.0.0.1", False),
    # IPv6 forms that embed an IPv4 address are judged by the embedded address too
    ("2002:7f00:1::", False), ("2002:a00:1::1", False), ("2002:808:808::1", True),  # 6to4
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::808:808", True),  # NAT64
    ("64:ff9b:1::7f00:1", False),  # local-use NAT64
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo whose client is 127.0.0.1
])
def test_address_classification(ip, public):
    assert address_is_public(ip) is public


@pytest.mark.parametrize("url,reason", [
    ("ftp://example.com/x.jpg", "unsupported_scheme"),
    ("file:///etc/passwd", "unsupported_scheme"),
    ("http:///nohost.jpg", "malformed_url"),
    ("http://example.com:99999/x", "malformed_url"),
])
def test_bad_urls(fetcher, url, reason):
    assert fetcher.fetch(url).drop.reason == reason


@pytest.mark.parametrize("path", ["/noai.jpg", "/noimageai.jpg", "/noindex.jpg", "/noimageindex.jpg",
                                  "/noai-ours.jpg", "/robots-multi.jpg"])
def test_opt_outs(web, fetcher, path):
    r = fetcher.fetch(web.url(path))
    assert r.drop.reason == "opted_out" and r.body is None


def test_opt_out_for_another_bot_is_ignored(web, fetcher):
    assert fetcher.fetch(web.url("/noai-other-bot.jpg")).ok


def test_tdm_reservation(web, fetcher):
    assert fetcher.fetch(web.url("/tdm.jpg")).drop.reason == "tdm_reserved"
    assert fetcher.fetch(web.url("/tdm0.jpg")).ok


def test_opt_outs_can_be_ignored(web):
    f = local(respect_opt_outs=False)
    assert f.fetch(web.url("/noai.jpg")).ok and f.fetch(web.url("/tdm.jpg")).ok


@pytest.mark.parametrize("path,reasons", [
    ("/trickle.jpg", {"timeout"}),
    ("/hang.jpg", {"timeout"}),
    ("/endless.jpg", {"too_large", "timeout"}),
])
def test_slow_and_endless_servers_end_within_the_deadline(web, path, reasons):
    f = local(timeout=1.5, max_bytes=10**12 if path != "/endless.jpg" else 5_000_000)
    start = time.monotonic()
    r = f.fetch(web.url(path))
    assert r.drop.reason in reasons
    assert time.monotonic() - start < 1.5 + HANG_SLACK


def test_endless_body_hits_the_byte_cap(web):
    r = local(max_bytes=1_000_000).fetch(web.url("/endless.jpg"))
    assert r.drop.reason == "too_large"


def test_byte_cap_from_content_length_and_from_the_body(web):
    path = unique("big")
    web.add(path, body=b"x" * 50_000)
    r = local(max_bytes=10_000).fetch(web.url(path))
    assert r.drop.reason == "too_large"
    assert local(max_bytes=50_000).fetch(web.url(path)).body == b"x" * 50_000


def test_connection_reset(web):
    r = local(retries=0).fetch(web.url("/reset.jpg"))
    assert r.drop.reason == "connection_error"


def test_connection_refused_is_retried(web):
    server = start_server({})
    url = server.url("/x.jpg")
    server.close()  # nothing listens there any more
    r = local(retries=2).fetch(url)
    assert r.drop.reason == "connection_error" and r.attempts == 3


def test_empty_body(web, fetcher):
    assert fetcher.fetch(web.url("/empty.jpg")).drop.reason == "empty_body"


def test_429_with_retry_after_then_success(web):
    path = unique("busy")
    good = make_jpeg(32, 32, seed=3)
    web.add(path, body=good, fail_first=1, fail_status=429, fail_headers=[("Retry-After", "1")])
    r = local(retries=1).fetch(web.url(path))
    assert r.ok and r.body == good and r.attempts == 2
    assert web.hit_count(path) == 2


def test_retry_after_as_http_date(web):
    path = unique("busy-date")
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 1))
    web.add(path, body=b"ok", fail_first=1, fail_status=503, fail_headers=[("Retry-After", when)])
    r = local(retries=1).fetch(web.url(path))
    assert r.ok and r.attempts == 2


def test_retry_after_beyond_the_deadline_gives_up(web):
    path = unique("busy-long")
    web.add(path, body=b"ok", fail_first=1, fail_status=429, fail_headers=[("Retry-After", "3600")])
    r = local(retries=3, timeout=2).fetch(web.url(path))
    assert r.drop.reason == "http_error" and r.status == 429 and r.attempts == 1


def test_503_retries_exhausted(web):
    path = unique("down")
    web.add(path, status=503, body=b"busy")
    r = local(retries=2).fetch(web.url(path))
    assert r.drop.reason == "http_error" and r.drop.message == "HTTP 503" and r.attempts == 3
    assert web.hit_count(path) == 3


def test_robots_txt_disallow_and_fetched_once_per_host(web):
    f = local(respect_robots_txt=True)
    before = web.hit_count("/robots.txt")
    assert f.fetch(web.url("/private/secret.jpg")).drop.reason == "robots_disallowed"
    assert web.hit_count("/private/secret.jpg") == 0
    assert f.fetch(web.url("/good.jpg")).ok
    threads = [threading.Thread(target=f.fetch, args=(web.url("/good_small.jpg"),)) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert web.hit_count("/robots.txt") - before == 1
    assert local().fetch(web.url("/private/secret.jpg")).ok  # off unless asked for


def test_robots_txt_names_our_token(web):
    server = start_server({
        "/robots.txt": Route(body=b"User-agent: clipcurate\nDisallow: /\n\nUser-agent: *\nAllow: /\n"),
        "/a.jpg": Route(body=b"a"),
    })
    try:
        assert local(respect_robots_txt=True).fetch(server.url("/a.jpg")).drop.reason == "robots_disallowed"
        assert local(respect_robots_txt=True, user_agent_token="otherbot").fetch(server.url("/a.jpg")).ok
    finally:
        server.close()


@pytest.mark.parametrize("robots,ok", [(Route(status=404), True), (Route(status=503), True),
                                       (Route(status=403), False)])
def test_robots_txt_missing_or_failing(robots, ok):
    server = start_server({"/robots.txt": robots, "/a.jpg": Route(body=b"a")})
    try:
        assert local(respect_robots_txt=True).fetch(server.url("/a.jpg")).ok is ok
    finally:
        server.close()


def test_per_host_concurrency_bound(web):
    path = unique("slow")
    web.add(path, body=b"ok", delay=0.3)
    f = local(per_host_concurrency=2, timeout=10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(f.fetch(web.url(path)))) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r.ok for r in results) and len(results) == 8
    assert web.peak_concurrency(path) == 2


def test_fetcher_is_shared_across_threads(web, fetcher):
    paths = ["/good.jpg", "/404", "/noai.jpg", "/redirect", "/empty.jpg", "/good.png"] * 4
    out = {}

    def go(i, p):
        out[i] = fetcher.fetch(web.url(p))

    threads = [threading.Thread(target=go, args=(i, p)) for i, p in enumerate(paths)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    expected = {"/good.jpg": None, "/404": "http_error", "/noai.jpg": "opted_out", "/redirect": None,
                "/empty.jpg": "empty_body", "/good.png": None}
    for i, p in enumerate(paths):
        assert (out[i].drop.reason if out[i].drop else None) == expected[p]


def test_non_ascii_url_is_encoded(web, fetcher):
    web.add("/caf%C3%A9.jpg", body=b"cafe")
    assert fetcher.fetch(web.url("/café.jpg")).body == b"cafe"


def test_robots_cache_is_bounded_and_evicts_the_least_recent_origin(web):
    servers = [start_server({"/robots.txt": Route(body=b"User-agent: *\nAllow: /\n"), "/a.jpg": Route(body=b"a")})
               for _ in range(3)]
    try:
        f = local(respect_robots_txt=True, robots_cache_size=2)
        for server in servers + [servers[2], servers[0]]:  # A B C C A: A was evicted by C
            assert f.fetch(server.url("/a.jpg")).ok
        assert [s.hit_count("/robots.txt") for s in servers] == [2, 1, 1]
        assert len(f._robots) == 2
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize("reason,message,transient", [
    ("timeout", "no complete answer within the deadline", True),
    ("connection_error", "ConnectionResetError: reset by peer", True),
    ("connection_error", "cannot resolve host: [Errno -2] Name or service not known", False),
    ("connection_error", "TLS certificate: certificate has expired", False),
    ("http_error", "HTTP 503", True), ("http_error", "HTTP 429", True), ("http_error", "HTTP 404", False),
    ("too_large", "body over the cap", False),
])
def test_one_definition_of_transient_for_retries_and_retry_failed(reason, message, transient):
    from clipcurate.pipeline.net.failures import Fail, is_transient
    from clipcurate.pipeline.stages.download import is_transient as download_is_transient
    assert is_transient(reason, message) is transient
    assert Fail(reason, message).transient is transient
    assert download_is_transient({"reason": reason, "error_message": message}) is transient
