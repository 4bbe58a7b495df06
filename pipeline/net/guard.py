"""The address guard: connections resolve the host themselves, refuse non-public addresses
(IPv6 forms that embed an IPv4 address are checked on the embedded address too) and connect
to the checked IP; the opener has no proxy handler and follows no redirect by itself."""
from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import urllib.request
from typing import Optional

from clipcurate.pipeline.net.deadline import Deadline


class PrivateAddress(OSError):
    """The host resolves to an address that is not public."""


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> list:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped, 6to4 (2002::/16), Teredo (2001::/32,
    server and client) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48, the last 32 bits)."""
    found = []
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    if any(addr in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return found


def _is_public(addr) -> bool:
    return not (addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_multicast
                or addr.is_reserved or addr.is_unspecified or not addr.is_global)


def address_is_public(ip: str) -> bool:
    """True when ``ip`` is a global unicast address and so is every IPv4 address embedded in it."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        if embedded:
            return all(_is_public(v4) for v4 in embedded)
    return _is_public(addr)


def _connect_checked(host: str, port: int, allow_private: bool, deadline: Deadline) -> socket.socket:
    """Resolve ``host``, check every address, connect to a checked one, arm the deadline."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not allow_private:
        for *_, sockaddr in infos:
            if not address_is_public(sockaddr[0]):
                raise PrivateAddress(f"{host} resolves to non-public address {sockaddr[0]}")
    last: Optional[OSError] = None
    for family, kind, proto, _, sockaddr in infos:
        if deadline.remaining() <= 0:
            raise TimeoutError("deadline passed while connecting")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(sockaddr)
        except OSError as err:
            sock.close()
            last = err
            continue
        deadline.arm(sock)
        return sock
    raise last or OSError(f"no address for {host}")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allow_private: bool, deadline: Deadline, **kw):
        super().__init__(*args, **kw)
        self._create_connection = lambda address, timeout=None, source=None: _connect_checked(
            address[0], address[1], allow_private, deadline)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private: bool, deadline: Deadline, **kw):
        super().__init__(*args, **kw)
        self._create_connection = lambda address, timeout=None, source=None: _connect_checked(
            address[0], address[1], allow_private, deadline)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self._allow_private = allow_private

    def http_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPConnection, allow_private=self._allow_private,
                                              deadline=req.deadline), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool):
        super().__init__(context=ssl.create_default_context())
        self._allow_private = allow_private

    def https_open(self, req):
        return self.do_open(functools.partial(_GuardedHTTPSConnection, allow_private=self._allow_private,
                                              deadline=req.deadline), req, context=self._context)


def build_opener(allow_private: bool) -> urllib.request.OpenerDirector:
    """An opener with only our guarded handlers: no proxies, no automatic redirects, no error raising."""
    opener = urllib.request.OpenerDirector()
    for handler in (_GuardedHTTPHandler(allow_private), _GuardedHTTPSHandler(allow_private)):
        opener.add_handler(handler)
    return opener
