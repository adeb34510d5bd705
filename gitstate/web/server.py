"""The web view's HTTP server: the standard library's threading server, read-only, local.

:func:`make_server` binds a loopback address unless told ``allow_remote=True``; then
every request must carry the random access token of the printed URL (``?token=``
once, after which a cookie carries it); ``token=True`` asks for it on loopback too.
Only ``GET`` and ``HEAD`` are answered; any other method gets ``405``. Without a
token, a request whose ``Host`` header names another host is refused (``421``), so a
web page elsewhere cannot read the API through a DNS name pointed at 127.0.0.1.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import InvalidArgumentError, StateRepository, __version__
from .app import Response, WebApp, error

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
COOKIE = "gitstate_token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) means this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebServer(ThreadingHTTPServer):
    """A threading HTTP server holding the :class:`WebApp` and the access token (or None)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: WebApp, token: str | None):
        host = address[0].strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, address[1]), Handler)
        self.app, self.token = app, token

    @property
    def url(self) -> str:
        """The URL to open (with the token, if one is needed)."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/" + (f"?token={self.token}" if self.token else "")


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = f"gitstate/{__version__}"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.answer(head=True)

    def refuse(self) -> None:
        self.send(error(405, "the gitstate web view is read-only: only GET and HEAD"),
                  head=False, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse  # noqa: N815

    def answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        token = self.server.token
        extra: dict[str, str] = {}
        if not self.host_allowed():
            response = error(421, f"this server answers to {self.server.url.split('/')[2]} only")
        elif token is not None and not self.token_ok(token, query.get("token", [""])[-1]):
            response = error(403, "this server needs the access token of the URL it printed")
        else:
            if token is not None and "token" in query:
                extra["Set-Cookie"] = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            response = self.server.app.get(url.path or "/", url.query)
        self.send(response, head, extra)

    def host_allowed(self) -> bool:
        if self.server.token is not None:
            return True  # the token protects it (and other hosts may reach it on purpose)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return is_loopback(host)

    def token_ok(self, token: str, given: str) -> bool:
        cookies = (self.headers.get("Cookie") or "").split(";")
        values = [given] + [c.strip().partition("=")[2] for c in cookies
                            if c.strip().startswith(COOKIE + "=")]
        return any(hmac.compare_digest(v.encode(), token.encode()) for v in values if v)

    def send(self, response: Response, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(response.status)
        for name, value in {**SECURITY_HEADERS, "Content-Type": response.content_type,
                            "Content-Length": str(len(response.body)), **response.headers,
                            **(extra or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the command prints its URL, not every request


def make_server(repo: StateRepository, host: str = "127.0.0.1", port: int = 0, *,
                allow_remote: bool = False, token: bool | None = None) -> WebServer:
    """A server of the web view of ``repo`` on ``host:port`` (port 0: a free one), not started
    (``serve_forever()`` runs it). A host that is not loopback needs ``allow_remote=True``,
    and then a random token in every request; ``token=True`` asks for one on loopback too
    (other users of the machine can reach loopback)."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgumentError(f"port must be 0..65535, got {port!r}")
    local = is_loopback(host)
    if not local and not allow_remote:
        raise InvalidArgumentError(f"{host!r} is not a loopback address: the web view would be "
                                   "reachable from other machines; allow it explicitly (gitstate serve "
                                   "--allow-remote), which protects it with a random access token")
    needed = not local if token is None else bool(token) or not local
    return WebServer((host, port), WebApp(repo), secrets.token_urlsafe(24) if needed else None)
