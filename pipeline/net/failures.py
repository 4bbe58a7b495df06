"""How a fetch fails: the ``Fail`` exception, the mapping from socket/HTTP errors to reasons,
and the one definition of a transient failure (worth another try now or in a later run)."""
from __future__ import annotations

import http.client
import re
import socket
import ssl
import urllib.error
from typing import Optional

from clipcurate.filters.base import Drop

from clipcurate.pipeline.net.deadline import Deadline
from clipcurate.pipeline.net.guard import PrivateAddress

_HTTP_STATUS = re.compile(r"HTTP (\d{3})")
PERMANENT_CONNECTION_PREFIXES = ("cannot resolve host", "TLS certificate")


def is_transient(reason: Optional[str], message: Optional[str] = None, status: Optional[int] = None) -> bool:
    """Whether a failure may go away on another try: timeouts, connection errors other than DNS and
    TLS-certificate failures, HTTP 429 and 5xx. The fetcher's retries and ``--retry-failed`` both use it."""
    if reason == "timeout":
        return True
    if reason == "connection_error":
        return not (message or "").startswith(PERMANENT_CONNECTION_PREFIXES)
    if reason == "http_error":
        if status is None:
            m = _HTTP_STATUS.search(message or "")
            status = int(m.group(1)) if m else None
        return status is not None and (status == 429 or status >= 500)
    return False


class Fail(Exception):
    """One attempt ended without an image; carries the drop and retry hints."""

    def __init__(self, reason: str, message: str, status=None, retry_after=None, final_url=None, content_type=None):
        super().__init__(message)
        self.drop = Drop(reason, message)
        self.status = status
        self.transient = is_transient(reason, message, status)
        self.retry_after = retry_after
        self.final_url = final_url
        self.content_type = content_type


def classify(err: BaseException, deadline: Deadline) -> Fail:
    """Map an exception from the socket/http/urllib layers to a failure."""
    if isinstance(err, urllib.error.URLError) and isinstance(err.reason, BaseException):
        err = err.reason
    if isinstance(err, PrivateAddress):
        return Fail("private_address", str(err))
    if deadline.expired() or isinstance(err, (TimeoutError, socket.timeout)):
        # one message whatever the socket saw when the deadline closed it (a timeout, a reset): same input, same bytes
        return Fail("timeout", "no complete answer within the deadline")
    if isinstance(err, socket.gaierror):
        return Fail("connection_error", f"cannot resolve host: {err}")
    if isinstance(err, ssl.SSLCertVerificationError):
        return Fail("connection_error", f"TLS certificate: {err.verify_message or err}")
    if isinstance(err, (OSError, http.client.HTTPException, urllib.error.URLError)):
        return Fail("connection_error", f"{type(err).__name__}: {err}")
    if isinstance(err, ValueError):
        return Fail("malformed_url", str(err))
    raise err  # a bug, not a network failure


