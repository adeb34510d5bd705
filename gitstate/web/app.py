"""The web view's requests and answers, apart from HTTP: a read-only JSON API and the assets.

:class:`WebApp` answers ``GET`` requests over one :class:`~gitstate.StateRepository`
(see docs/web.md for the routes). It calls only the façade's read methods, so no
request can write; assets are the files of ``static/`` listed once at start, so no
request can name another file; agents and revisions are checked by the library
(``InvalidAgentIdError``, ``RevisionNotFoundError``) before anything is read.

Answers that cost a walk of a history (timelines, agents' counts, the fork graph,
diffs) are cached by what they depend on (an agent's head commit, two commits):
a commit never changes, so a cached answer is right until a head moves.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from .. import AgentNotFoundError, GitstateError, InvalidArgumentError, StateRepository, codec
from ..errors import AmbiguousRevisionError, InvalidAgentIdError, RevisionNotFoundError
from ..explore import Point, StateCache, forks
from ..models import AgentInfo, Checkpoint

STATIC = os.path.join(os.path.dirname(__file__), "static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
PAGES = ("", "agents", "agent", "checkpoint", "diff", "graph")  # first path segments of the pages
PAGE_SIZE, MAX_PAGE = 50, 500
SPARK = 40  # checkpoints in an agent's sparkline of state size
METRICS = ("messages", "total_tokens", "tool_calls")  # plotted beside iteration and size


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Cache:
    """A small bounded LRU map, safe between threads."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: two threads may compute it once each
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def checkpoint_json(c: Checkpoint) -> dict[str, Any]:
    return c.model_dump(mode="json")


def point_json(p: Point) -> dict[str, Any]:
    c, t = p.checkpoint, p.checkpoint.trailers
    return {"commit": c.commit, "checkpoint_id": c.checkpoint_id, "created": c.created.isoformat(),
            "iteration": c.iteration, "status": c.status, "names": list(c.names), "message": c.message,
            "size": p.size, "values": p.values, "rollback_of": t.get("Rollback-Of"),
            "forked_from_agent": t.get("Forked-From-Agent"), "agent_id": c.agent_id}


def pointer_value(document: Any, pointer: str) -> tuple[bool, Any]:
    """The value at an RFC 6901 JSON pointer: ``(found, value)``."""
    if pointer == "":
        return True, document
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        elif isinstance(document, dict) and token in document:
            document = document[token]
        else:
            return False, None
    return True, document


class WebApp:
    """The read-only web view of one repository (thread-safe: the server's threads share it)."""

    def __init__(self, repo: StateRepository):
        self.repo = repo
        self.states = StateCache()
        self.timelines = Cache(256)
        self.diffs = Cache(32)
        self.graphs = Cache(4)
        self._agents: dict[str, AgentInfo] = {}
        self._agents_lock = threading.Lock()
        self.assets = {path.name: path.read_bytes() for path in Path(STATIC).iterdir() if path.is_file()}

    # -- dispatch ----------------------------------------------------------------------
    def get(self, path: str, query: str) -> Response:
        """The answer to ``GET path?query`` (``path`` still percent-encoded)."""
        parts = [unquote(p) for p in path.split("/")[1:]]
        params = {k: v for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            if parts[0] == "api":
                return self.api(parts[1:], params)
            if parts[0] == "static" and len(parts) == 2 and parts[1] in self.assets:
                return self.asset(parts[1])
            if parts[0] in PAGES:
                return self.asset("index.html")
            return error(404, f"no page {path!r}")
        except (AgentNotFoundError, RevisionNotFoundError) as exc:
            return error(404, str(exc))
        except (InvalidArgumentError, InvalidAgentIdError, AmbiguousRevisionError) as exc:
            return error(400, str(exc))
        except GitstateError as exc:
            return error(500, str(exc))

    def asset(self, name: str) -> Response:
        kind = TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        return Response(200, self.assets[name], kind, {"Cache-Control": "no-cache"})

    def api(self, parts: list[str], params: dict[str, list[str]]) -> Response:
        def one(name: str, default: str | None = None) -> str | None:
            return params.get(name, [default])[-1]

        match parts:
            case ["agents"]:
                return ok(self.agents(one("q") or "", one("status") or "", number(one("offset"), 0),
                                      number(one("limit"), PAGE_SIZE, MAX_PAGE)))
            case ["agents", agent_id]:
                return ok(self.agent(agent_id))
            case ["agents", agent_id, "timeline"]:
                return Response(200, self.timeline(agent_id, tuple(params.get("path", []))))
            case ["agents", agent_id, "checkpoints", rev]:
                return ok(self.checkpoint(agent_id, rev))
            case ["agents", agent_id, "checkpoints", rev, "state.json"]:
                commit = self.repo.resolve(agent_id, rev)
                return Response(200, codec.encode(self.repo.read_state(commit.commit)), "application/json",
                                attachment(f"{agent_id}-{commit.short}-state.json"))
            case ["diff"] | ["diff", "patch.json"]:
                result = self.diff(one("agent"), one("a"), one("b"), one("other"))
                if parts[-1] == "patch.json":
                    return Response(200, json.dumps(result["patch"], ensure_ascii=False).encode(),
                                    "application/json-patch+json", attachment("patch.json"))
                return ok(result)
            case ["graph"]:
                return Response(200, self.graph())
        return error(404, f"no API /api/{'/'.join(parts)}")

    # -- answers -------------------------------------------------------------------------
    def current_agents(self) -> list[AgentInfo]:
        """Every agent with its head, sorted by id: the heads' refs are read each time, and only
        the agents whose head moved are read again (all of them when many moved)."""
        heads = self.repo.heads()
        with self._agents_lock:
            known = dict(self._agents)
        moved = [a for a, sha in heads.items() if a not in known or known[a].head.commit != sha]
        if len(moved) > MAX_PAGE:
            errors: dict[str, GitstateError] = {}  # an agent that cannot be read is left out
            known = {info.agent_id: info for info in self.repo.agents(errors=errors)}
        else:
            for agent_id in moved:
                try:
                    known[agent_id] = self.head(agent_id)
                except GitstateError:  # deleted meanwhile, or damaged
                    known.pop(agent_id, None)
        known = {a: info for a, info in known.items() if a in heads}
        with self._agents_lock:
            self._agents = known
        return [known[a] for a in sorted(known)]

    def agents(self, q: str, status: str, offset: int, limit: int) -> dict[str, Any]:
        """A page of agents whose id holds ``q`` (and whose head has ``status``), with counts,
        names and the sizes of their last checkpoints."""
        infos = [i for i in self.current_agents()
                 if q in i.agent_id and (not status or i.head.status == status)]
        rows = []
        for info in infos[offset:offset + limit]:
            points = self.points(info)
            rows.append({"agent_id": info.agent_id, "head": checkpoint_json(info.head),
                         "count": len(points), "names": sorted(n for p in points for n in p.checkpoint.names),
                         "sizes": [p.size for p in points[-SPARK:]]})
        return {"total": len(infos), "offset": offset, "limit": limit, "agents": rows}

    def points(self, info: AgentInfo, paths: tuple[str, ...] = METRICS) -> list[Point]:
        key = (info.agent_id, info.head.commit, paths)
        return list(self.timelines.get(
            key, lambda: self.repo.timeline(info.agent_id, paths, cache=self.states)))

    def head(self, agent_id: str) -> AgentInfo:
        return AgentInfo(agent_id=agent_id, head=self.repo.latest(agent_id))

    def agent(self, agent_id: str) -> dict[str, Any]:
        info = self.head(agent_id)
        return {"agent_id": agent_id, "head": checkpoint_json(info.head), "count": len(self.points(info)),
                "names": self.repo.names(agent_id)}

    def timeline(self, agent_id: str, extra: tuple[str, ...]) -> bytes:
        """The timeline as JSON bytes, cached by head and paths (10,000 points: a few MB)."""
        info = self.head(agent_id)
        paths = METRICS + tuple(p for p in extra if p not in METRICS)
        key = ("json", agent_id, info.head.commit, paths)
        return bytes(self.timelines.get(key, lambda: json.dumps({
            "agent_id": agent_id, "head": info.head.commit, "paths": list(paths),
            "points": [point_json(p) for p in self.points(info, paths)]}, ensure_ascii=False).encode()))

    def checkpoint(self, agent_id: str, rev: str) -> dict[str, Any]:
        checkpoint = self.repo.resolve(agent_id, rev)
        points = self.points(self.head(agent_id))
        at = next((i for i, p in enumerate(points) if p.checkpoint.commit == checkpoint.commit), None)
        child = points[at + 1].checkpoint.commit if at is not None and at + 1 < len(points) else None
        return {"checkpoint": checkpoint_json(checkpoint), "state": self.repo.read_state(checkpoint.commit),
                "parent": checkpoint.parent, "child": child, "agent_id": agent_id,
                "size": points[at].size if at is not None else None}

    def diff(self, agent_id: str | None, rev_a: str | None, rev_b: str | None,
             other: str | None) -> dict[str, Any]:
        """Checkpoint ``rev_a`` of ``agent_id`` against ``rev_b`` (default latest) of ``other``
        (default the same agent); ``rev_a`` defaults to the checkpoint before ``rev_b``."""
        if not agent_id:
            raise InvalidArgumentError("give the agent: /api/diff?agent=ID&a=REV&b=REV[&other=ID]")
        other = other or agent_id
        new = self.repo.resolve(other, rev_b or None)
        old = self.repo.resolve(agent_id, rev_a or (new.parent if other == agent_id and new.parent
                                                    else new.commit))
        return dict(self.diffs.get((old.commit, new.commit), lambda: self._diff(agent_id, old, other, new)))

    def _diff(self, agent_id: str, old: Checkpoint, other: str, new: Checkpoint) -> dict[str, Any]:
        result = self.repo.diff(agent_id, old.commit, new.commit, other_agent=other)
        a, b = self.repo.read_state(old.commit), self.repo.read_state(new.commit)
        paths = []
        for op in result.patch:
            had, before = pointer_value(a, op["path"])
            paths.append({"op": op["op"], "path": op["path"], "old": before if had else None,
                          "new": op.get("value")})
        return {"old": checkpoint_json(result.old), "new": checkpoint_json(result.new),
                "summary": result.summary, "paths": paths, "patch": result.patch,
                "sizes": [len(codec.encode(a)), len(codec.encode(b))]}

    def graph(self) -> bytes:
        """Every agent and the fork it started from, as JSON, cached while no head moves."""
        infos = self.current_agents()
        key = tuple((i.agent_id, i.head.commit) for i in infos)
        return bytes(self.graphs.get(
            key, lambda: json.dumps(self._graph(infos), ensure_ascii=False).encode()))

    def _graph(self, infos: list[AgentInfo]) -> dict[str, Any]:
        found = {f.agent_id: f for f in forks(self.repo.log_all())}
        return {"agents": [{"agent_id": i.agent_id,
                            "head": {"commit": i.head.commit, "iteration": i.head.iteration,
                                     "status": i.head.status},
                            "from_agent": found[i.agent_id].from_agent if i.agent_id in found else None,
                            "from_commit": found[i.agent_id].from_commit if i.agent_id in found else None,
                            "from_checkpoint_id": (found[i.agent_id].from_checkpoint_id
                                                   if i.agent_id in found else None)}
                           for i in infos]}


def number(text: str | None, default: int, most: int | None = None) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise InvalidArgumentError(f"{text!r} is not a whole number >= 0")
    return min(int(text), most) if most is not None else int(text)


def ok(value: Any) -> Response:
    return Response(200, json.dumps(value, ensure_ascii=False).encode())


def error(status: int, message: str) -> Response:
    return Response(status, json.dumps({"error": message}, ensure_ascii=False).encode())


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
