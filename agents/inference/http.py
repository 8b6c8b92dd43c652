"""JSON over HTTP to inference servers: the one client every caller of a server goes through.

Only the standard library (`urllib.request`), so the env, the policies and the trainers can talk
to servers without an HTTP dependency. Every failure is one exception type, `HTTPRequestError`,
whose message names the method and the URL and carries the server's own words:

- an HTTP error status: `status` is the code, `body` the server's answer (its message);
- no answer (refused, reset, timed out, a broken response): `status` is ``None``;
- an answer that is not JSON: `status` is the (2xx) code and `body` the text.

Callers decide what a failure means (a retry, a `GenerationError`, a failed weight push); the
client does not retry.

>>> server_root("http://127.0.0.1:8000/v1/")
'http://127.0.0.1:8000'
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HTTPRequestError", "free_port", "request_json", "server_root", "wait_healthy"]


class HTTPRequestError(RuntimeError):
    """A request to a server failed (see the module docstring).

    Attributes:
        url, method: the request.
        status: the HTTP status of the answer; ``None`` when no answer came.
        body: the answer's text (the server's message); ``None`` when no answer came.
        retry_after: the answer's ``Retry-After`` in seconds, when it gave one as a number.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        method: str,
        status: int | None = None,
        body: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.url, self.method = url, method
        self.status, self.body, self.retry_after = status, body, retry_after


def server_root(url: str) -> str:
    """A server's root URL: `url` without trailing slashes and without the OpenAI ``/v1`` suffix."""
    return url.rstrip("/").removesuffix("/v1")


def request_json(
    url: str,
    body: Any = None,
    *,
    method: str | None = None,
    timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
    opener: urllib.request.OpenerDirector | None = None,
    max_error_chars: int = 2000,
) -> Any:
    """Send one request and decode its JSON answer (``None`` for an empty one).

    Without `body` the request is a GET, with one a POST of ``json.dumps(body)`` (`method`
    overrides either). Raises `HTTPRequestError` (see the module docstring); its message quotes
    at most `max_error_chars` characters of the server's answer, `body` keeps all of it."""
    method = method or ("GET" if body is None else "POST")
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    open_ = opener.open if opener is not None else urllib.request.urlopen
    try:
        with open_(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        text = _error_text(exc)
        raise HTTPRequestError(
            f"{method} {url}: HTTP {exc.code}: {text[:max_error_chars]}",
            url=url,
            method=method,
            status=exc.code,
            body=text,
            retry_after=_retry_after(exc.headers),
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise HTTPRequestError(
            f"{method} {url}: no answer: {type(reason).__name__}: {reason}", url=url, method=method
        ) from exc
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPRequestError(
            f"{method} {url}: HTTP {status} but the body is not JSON ({exc.msg}): {text[:500]!r}",
            url=url,
            method=method,
            status=status,
            body=text,
        ) from None


def wait_healthy(
    url: str,
    timeout_s: float,
    *,
    interval_s: float = 0.25,
    gone: Callable[[], str | None] | None = None,
) -> None:
    """Block until ``GET <root>/health`` answers 200.

    `gone`, when given, is asked between tries and returns why the server can no longer come
    up (its process exited, say), which is raised as a `RuntimeError` at once. Raises
    `TimeoutError` after `timeout_s`, with the last failure."""
    root = server_root(url)
    deadline = time.monotonic() + timeout_s
    while True:
        if gone is not None and (why := gone()) is not None:
            raise RuntimeError(f"{root} will not answer: {why}")
        try:
            request_json(f"{root}/health", timeout=5)
            return
        except HTTPRequestError as exc:  # refused, reset, 503 while it starts
            if exc.status is not None and 200 <= exc.status < 300:
                return  # healthy, with an answer that is not JSON
            if time.monotonic() > deadline:
                raise TimeoutError(f"{root} did not answer /health within {timeout_s:g}s: {exc}") from exc
        time.sleep(interval_s)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (for a server or a process group's store)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")
    except Exception:  # the body could not be read: the status is all there is
        return str(exc.reason)
    finally:
        exc.close()


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: ignored, the caller's backoff applies
        return None
