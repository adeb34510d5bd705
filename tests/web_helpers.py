"""A repository for the web view's tests, and its server on 127.0.0.1 run by the tests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from gitstate import AgentState, StateRepository
from gitstate.web import WebServer, make_server

T0 = datetime(2025, 6, 3, 12, tzinfo=timezone.utc)
MAIN, RETRY, SOLO = "agent_7c1e9a42", "agent_7c1e9a42-retry", "agent_e81d2c07"


def sample_repository(repo: StateRepository) -> dict[str, Any]:
    """MAIN: 8 checkpoints (names initial and triaged, a rollback at the 6th, completed at
    the end); RETRY forked from MAIN's 'triaged' and saved twice; SOLO: 1 checkpoint."""
    state = AgentState(agent_id=MAIN, task="audit payments-service", created_at="2025-06-03T12:00:00Z")
    state.start()
    for i in range(1, 8):
        state.iteration = i
        state.add_message("assistant", f"step {i}")
        state.total_tokens = 100 * i * i
        state.last_updated = state.started_at = "2025-06-03T12:00:00Z"
        state.messages[-1]["timestamp"] = "2025-06-03T12:00:00Z"
        if i == 7:
            state.status = "completed"
        repo.save(state, time=T0 + timedelta(minutes=i), name={1: "initial", 3: "triaged"}.get(i))
        if i == 5:
            repo.rollback(MAIN, "latest~1")
            state = repo.load(MAIN)
    repo.fork(MAIN, "triaged", RETRY)
    retry = repo.load(RETRY)
    for i in range(2):
        retry.iteration += 1
        retry.total_tokens += 50
        repo.save(retry, time=T0 + timedelta(hours=1, minutes=i))
    repo.save(AgentState(agent_id=SOLO, status="failed"), time=T0)
    return {"main": list(reversed(repo.log(MAIN))), "retry": list(reversed(repo.log(RETRY)))}


@contextmanager
def running(repo: StateRepository, **options: Any) -> Iterator[WebServer]:
    """``make_server(repo, "127.0.0.1", 0, ...)`` serving in a thread until the block ends."""
    server = make_server(repo, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def request(server: WebServer, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request, the path sent exactly as given (no normalization)."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(host), int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": f"{host}:{port}", **(headers or {})}.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def get_json(server: WebServer, path: str) -> Any:
    status, _headers, body = request(server, "GET", path)
    assert status == 200, (status, body)
    return json.loads(body)
