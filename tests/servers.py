"""Real git servers on 127.0.0.1 for the remote tests: ``git daemon`` and smart HTTP.

Both serve every bare repository under a root folder and count the sessions
they serve, so a test can assert how many connections a command used.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional


def bare(path: Path, **config: str) -> Path:
    """Create a bare repository with the real git, with extra ``git config`` settings."""
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    for key, value in config.items():
        subprocess.run(["git", "--git-dir", str(path), "config", key, value], check=True)
    return path


def hook(server: Path, name: str, script: str) -> None:
    """Install an executable shell hook (``pre-receive``, ``update``...) in a bare repo."""
    path = server / "hooks" / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GitDaemon:
    """``git daemon`` with receive-pack enabled, exporting every repository under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.log: list[str] = []
        self._ready = threading.Event()
        self.port = _free_port()
        self.process = subprocess.Popen(
            ["git", "daemon", "--verbose", "--reuseaddr", "--export-all",
             "--enable=receive-pack", "--informative-errors", f"--base-path={root}",
             "--listen=127.0.0.1", f"--port={self.port}", "--log-destination=stderr", str(root)],
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            self.stop()
            raise RuntimeError(f"git daemon did not start: {self.log}")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip("\n"))
            if "Ready to rumble" in line:
                self._ready.set()
        self._ready.set()  # the daemon exited: stop waiting

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def sessions(self, service: str) -> int:
        """How many ``upload-pack``/``receive-pack`` requests the daemon has served."""
        return sum(1 for line in self.log if re.search(rf"Request {service} for ", line))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._reader.join(10)


class _CGIBridge(BaseHTTPRequestHandler):
    """Runs ``git http-backend`` for each request (the CGI protocol, by hand)."""

    server: "GitHttpServer"

    def do_GET(self) -> None:
        self._run()

    def do_POST(self) -> None:
        self._run()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run(self) -> None:
        path, _, query = self.path.partition("?")
        self.server.requests.append(f"{self.command} {path}" + (f"?{query}" if query else ""))
        self.server.authorizations.append(self.headers.get("Authorization"))
        if self.server.credentials and self.headers.get("Authorization") != self.server.credentials:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self._body()
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": "tester",
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        result = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(": ")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitHttpServer(ThreadingHTTPServer):
    """git's smart HTTP protocol (``git http-backend``) on 127.0.0.1, in a thread.

    ``credentials=("user", "secret")`` makes every request need that Basic auth.
    ``requests`` lists ``"METHOD /path?query"`` of every request received.
    """

    daemon_threads = True

    def __init__(self, root: Path, credentials: Optional[tuple[str, str]] = None):
        super().__init__(("127.0.0.1", 0), _CGIBridge)
        self.root = root
        self.credentials = ("Basic " + base64.b64encode(":".join(credentials).encode()).decode()
                            if credentials else None)
        self.requests: list[str] = []
        self.authorizations: list[Optional[str]] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, name: str, userinfo: str = "") -> str:
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}/{name}"

    def sessions(self, service: str) -> int:
        """How many POSTs to ``git-<service>`` (one per upload/receive session)."""
        return sum(1 for r in self.requests if r.startswith("POST ") and r.endswith(f"/git-{service}"))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)
