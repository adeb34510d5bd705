"""GitstateSaver beyond the conformance suite: real graphs, reopening, values, ids, rebuilds,
concurrency, gitstate's own commands on threads, and what stock git says of it all."""

from __future__ import annotations

import asyncio
import json
import operator
import os
import pickle
import re
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from ipaddress import IPv4Address, IPv6Network
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypedDict
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from conftest import fsck, git, snapshot
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Interrupt, Send, StateSnapshot, interrupt
from pydantic import BaseModel

from gitstate import StateRepository
from gitstate.core import Core
from gitstate.errors import ConcurrentUpdateError, CorruptObjectError, InvalidArgumentError
from gitstate.ids import is_valid_agent_id
from gitstate.langgraph import GitstateSaver, agent_id
from gitstate.retention import RetentionPolicy
from gitstate_cli.main import cli

# -- a real graph: Send fan-out, a subgraph that interrupts, resume, a fork ------------------


class Research(TypedDict):
    topic: str
    notes: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]
    verdict: str


def plan(state: Research) -> dict[str, Any]:
    return {"notes": ["plan"], "messages": [HumanMessage(f"research {state['topic']}", id="plan")]}


def fan_out(state: Research) -> list[Send]:
    return [Send("research", {"topic": f"{state['topic']}-{i}", "notes": [], "messages": [],
                              "verdict": ""}) for i in range(3)]


def research(state: Research) -> dict[str, Any]:
    topic = state["topic"]
    return {"notes": [f"found {topic}"],
            "messages": [AIMessage(f"about {topic}", id=f"ai-{topic}",
                                   tool_calls=[{"name": "search", "args": {"q": topic}, "id": f"c-{topic}"}]),
                         ToolMessage(f"results for {topic}", id=f"tool-{topic}", tool_call_id=f"c-{topic}")]}


def draft(state: Research) -> dict[str, Any]:
    return {"notes": [f"draft of {len(state['notes'])} notes"]}


def approve(state: Research) -> dict[str, Any]:
    answer = interrupt({"question": "publish?", "notes": len(state["notes"])})
    return {"verdict": answer, "notes": [f"verdict {answer}"]}


def finish(state: Research) -> dict[str, Any]:
    return {"notes": [f"done: {state['verdict']}"]}


def build(checkpointer: BaseCheckpointSaver[Any]) -> Any:
    review = StateGraph(Research)
    review.add_node("draft", draft)
    review.add_node("approve", approve)
    review.add_edge(START, "draft")
    review.add_edge("draft", "approve")
    graph = StateGraph(Research)
    graph.add_node("plan", plan)
    graph.add_node("research", research)
    graph.add_node("review", review.compile())
    graph.add_node("finish", finish)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", fan_out, ["research"])
    graph.add_edge("research", "review")
    graph.add_edge("review", "finish")
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer)


INPUT = {"topic": "tides", "notes": [], "messages": [], "verdict": ""}


def scenario(saver: BaseCheckpointSaver[Any]) -> tuple[list[Any], str]:
    """Run to the interrupt, resume, fork before the research and run the fork to its interrupt."""
    graph = build(saver)
    config = {"configurable": {"thread_id": "research thread"}}
    seen = [graph.invoke(INPUT, config), graph.get_state(config, subgraphs=True)]
    seen.append(graph.invoke(Command(resume="yes"), config))
    before = next(s for s in graph.get_state_history(config) if s.next == ("research",) * 3)
    fork = graph.update_state(before.config, {"notes": ["forked"]})
    seen += [graph.invoke(None, fork), graph.get_state(fork, subgraphs=True)]
    seen.append(list(graph.get_state_history(config)))
    return seen, "research thread"


async def ascenario(saver: BaseCheckpointSaver[Any]) -> tuple[list[Any], str]:
    graph = build(saver)
    config = {"configurable": {"thread_id": "async thread"}}
    seen = [await graph.ainvoke(INPUT, config), await graph.aget_state(config, subgraphs=True)]
    seen.append(await graph.ainvoke(Command(resume="yes"), config))
    before = [s async for s in graph.aget_state_history(config) if s.next == ("research",) * 3][0]
    fork = await graph.aupdate_state(before.config, {"notes": ["forked"]})
    seen += [await graph.ainvoke(None, fork), await graph.aget_state(fork, subgraphs=True)]
    seen.append([s async for s in graph.aget_state_history(config)])
    return seen, "async thread"


ANY_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Ids:
    """Checkpoint ids, task ids and namespaces renamed by first appearance, so two runs
    (whose uuid6 ids differ) compare equal when their histories have the same shape."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        return self.names.setdefault(value, f"#{len(self.names)}")

    def ns(self, ns: str) -> str:
        return "|".join(f"{part.partition(':')[0]}:{self(part.partition(':')[2])}" if part else ""
                        for part in ns.split("|")) if ns else ""


def normal(value: Any, ids: Ids) -> Any:
    """A value with its run-specific ids replaced (see Ids), objects as comparable tuples."""
    if isinstance(value, StateSnapshot):
        return ("State", normal(value.values, ids), value.next, normal(config_ids(value.config, ids), ids),
                normal(config_ids(value.parent_config, ids), ids),
                {k: v for k, v in normal(dict(value.metadata or {}), ids).items() if k != "run_id"},
                tuple((t.name, normal(t.interrupts, ids), normal(t.state, ids), normal(t.result, ids))
                      for t in value.tasks), normal(value.interrupts, ids))
    if isinstance(value, dict):
        return {key: normal(item, ids) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(normal(item, ids) for item in value)
    if isinstance(value, Interrupt):
        return ("Interrupt", normal(value.value, ids))
    if isinstance(value, Send):
        return ("Send", value.node, normal(value.arg, ids))
    if isinstance(value, str):  # uuids (checkpoint and task ids), also inside namespaces
        return ANY_UUID.sub(lambda match: ids(match[0]), value)
    return value


def config_ids(config: Any, ids: Ids) -> Any:
    if not config:
        return None
    conf = config["configurable"]
    checkpoint = ids(conf["checkpoint_id"]) if "checkpoint_id" in conf else None
    return ids.ns(conf.get("checkpoint_ns", "")), checkpoint


def tuples(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[Any]:
    """Every checkpoint of the thread, all namespaces, as comparable data; grouped by
    namespace (savers may interleave namespaces differently), newest first in each."""
    ids = Ids()
    found: dict[str, list[Any]] = {}
    for item in sorted(saver.list({"configurable": {"thread_id": thread_id}}),
                       key=lambda t: t.config["configurable"]["checkpoint_id"]):  # ids in time order
        conf = item.config["configurable"]
        checkpoint = {k: v for k, v in item.checkpoint.items() if k not in ("ts", "channel_versions",
                                                                             "versions_seen")}
        found.setdefault(ids.ns(conf["checkpoint_ns"]), []).append((
            config_ids(item.config, ids), config_ids(item.parent_config, ids),
            normal(checkpoint, ids),
            {k: v for k, v in normal(dict(item.metadata), ids).items() if k != "run_id"},
            [(normal(value, ids), channel) for _task, channel, value in item.pending_writes]))
    return [(ns, list(reversed(items))) for ns, items in found.items()]


def test_a_real_graph_gives_the_same_states_and_history_as_in_memory(path: str) -> None:
    expected, thread = scenario(InMemorySaver())
    with GitstateSaver(path) as saver:
        seen, _ = scenario(saver)
        assert normal(seen, Ids()) == normal(expected, Ids())
        stored = tuples(saver, thread)
    reference = InMemorySaver()
    scenario(reference)
    assert stored == tuples(reference, thread)
    assert len(stored) == 3  # the root namespace and two runs of the subgraph
    fsck(path)


def test_a_real_graph_gives_the_same_states_and_history_as_in_memory_async(path: str) -> None:
    async def run() -> tuple[Any, Any, Any, Any]:
        memory = InMemorySaver()
        expected, thread = await ascenario(memory)
        async with GitstateSaver(path) as saver:
            seen, _ = await ascenario(saver)
            return expected, seen, tuples(memory, thread), tuples(saver, thread)

    expected, seen, memory_tuples, stored = asyncio.run(run())
    assert normal(seen, Ids()) == normal(expected, Ids())
    assert stored == memory_tuples
    fsck(path)



class Fan(TypedDict):
    out: Annotated[list[int], operator.add]
    n: int


async def fan_work(state: Fan) -> dict[str, Any]:
    return {"out": [state["n"]]}


async def fan_start(state: Fan) -> dict[str, Any]:
    return {}


def fan_graph(checkpointer: BaseCheckpointSaver[Any], width: int) -> Any:
    graph = StateGraph(Fan)
    graph.add_node("start", fan_start)
    graph.add_node("work", fan_work)
    graph.add_edge(START, "start")
    graph.add_conditional_edges("start", lambda state: [Send("work", {"n": i, "out": []})
                                                        for i in range(width)], ["work"])
    graph.add_edge("work", END)
    return graph.compile(checkpointer=checkpointer)


def test_async_writes_sent_before_their_checkpoint_leave_the_executor_to_its_put(path: str) -> None:
    """LangGraph may send a step's writes before that step's put has run: they wait on the
    event loop, not in the executor's threads, so even one thread runs the put, which
    records them all in its own commit."""
    async def run() -> Any:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
        saver = GitstateSaver(path)
        root = await saver.aput(config("t"), checkpoint(), {"step": -1}, {})
        cp = checkpoint({"a": 1})
        early = [saver.aput_writes(config("t", "", cp["id"]), [("a", i)], f"task-{i:02}")
                 for i in range(20)]
        late = saver.aput(config("t", "", root["configurable"]["checkpoint_id"]), cp, {"step": 0},
                          {"a": 1})
        await asyncio.gather(*early, late)  # the writes' calls reach the executor first
        return await saver.aget_tuple(config("t"))

    latest = asyncio.run(run())
    assert latest.pending_writes == [(f"task-{i:02}", "a", i) for i in range(20)]
    assert git(path, "rev-list", "--count", f"agents/{agent_id('t')}").strip() == "2"
    fsck(path)


def test_an_async_fan_out_wider_than_the_executor_runs_as_in_memory(path: str) -> None:
    async def run(saver: BaseCheckpointSaver[Any], thread: str) -> Any:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(2))
        return await fan_graph(saver, 60).ainvoke({"out": [], "n": 0},
                                                  {"configurable": {"thread_id": thread}})

    memory = InMemorySaver()
    expected = asyncio.run(run(memory, "fan"))
    with GitstateSaver(path, writes_timeout=30) as saver:
        for thread in ("fan", "fan again"):
            assert asyncio.run(run(saver, thread)) == expected
        assert tuples(saver, "fan") == tuples(memory, "fan")
    fsck(path)


@pytest.fixture
def path(tmp_path: Path) -> str:
    """A new repository; automatic maintenance off, as in the ``repo`` fixture (one test turns
    it on)."""
    repo = StateRepository.init(tmp_path / "threads.git")
    repo.configure_maintenance(auto_objects=0)
    return repo.path


# -- helpers for direct calls --------------------------------------------------------------

AWKWARD = ["support ticket #42", "", "a/b/c", "user@example.com", "ünïcödé 😀", "x" * 300,
           "line\nbreak\ttab", "%41~=,", "..", "a.lock", "-dash", "refs/heads/x", "@{u}", " "]


def config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(values: dict[str, Any] | None = None, versions: dict[str, Any] | None = None) -> Any:
    values = values or {}
    versions = versions if versions is not None else dict.fromkeys(values, 1)
    return empty_checkpoint() | {"channel_values": values, "channel_versions": versions}


def put(saver: BaseCheckpointSaver[Any], thread: str, parent: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None, new: dict[str, Any] | None = None, ns: str = "",
        **metadata: Any) -> dict[str, Any]:
    """Put a checkpoint (child of ``parent``'s), ``values`` all new unless ``new`` says."""
    cp = checkpoint(values)
    conf = config(thread, ns, parent["configurable"]["checkpoint_id"] if parent else None)
    return saver.put(conf, cp, {"source": "loop", "step": 0, **metadata},
                     new if new is not None else cp["channel_versions"])


# -- reopening in a new process ------------------------------------------------------------

def dump(path: str) -> str:
    """Everything the saver returns for every thread of a repository, comparable across runs."""
    saver = GitstateSaver(path)
    threads = sorted({t.config["configurable"]["thread_id"] for t in saver.list(None)})
    return repr([(thread, tuples(saver, thread)) for thread in threads])


def test_reopening_the_repository_in_a_new_process_sees_everything(path: str) -> None:
    with GitstateSaver(path) as saver:
        scenario(saver)
        for thread in AWKWARD[:4]:
            stored = put(saver, thread, values={"note": thread})
            saver.put_writes(stored, [("note", thread), ("__interrupt__", [Interrupt("why?")])], "task")
        here = dump(path)
    child = subprocess.run([sys.executable, __file__, "dump", path], capture_output=True, text=True,
                           check=True)
    assert child.stdout == here
    assert "research thread" in here and "a/b/c" in here and "Interrupt" in here
    fsck(path)


# -- values --------------------------------------------------------------------------------

class Color(Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int


class Pair(NamedTuple):
    left: int
    right: str


class Card(BaseModel):
    title: str
    tags: list[str]
    due: datetime


VALUES: dict[str, Any] = {
    "str": "héllo", "int": 7, "uint64": 2**64 - 1, "int64": -(2**63), "float": 0.1, "negzero": -0.0,
    "inf": float("inf"), "bool": True, "none": None, "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"),
    "list": [1, "a", None, 2.5], "tuple": (1, 2), "nested": {"a": [1, {"c": 2}], "b": (3,)},
    "unsorted": {"b": 1, "a": 2}, "intkeys": {1: "a"}, "set": {1, 2}, "frozenset": frozenset({"x"}),
    "deque": deque([1, 2]), "datetime": datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
    "naive": datetime(2025, 1, 1), "date": date(2025, 2, 3), "time": time(1, 2, 3),
    "timedelta": timedelta(days=1, microseconds=5), "timezone": timezone(timedelta(hours=2)),
    "zoneinfo": ZoneInfo("UTC"), "decimal": Decimal("1.10"), "uuid": UUID(int=7),
    "path": Path("/tmp/x"), "pattern": re.compile("a+b", re.I), "ipv4": IPv4Address("10.0.0.1"),
    "ipv6": IPv6Network("::/64"), "enum": Color.RED, "dataclass": Point(1, 2), "namedtuple": Pair(1, "x"),
    "pydantic": Card(title="t", tags=["a"], due=datetime(2025, 5, 6, tzinfo=timezone.utc)),
    "messages": [HumanMessage("hi", id="1"), SystemMessage("be brief", id="2"),
                 AIMessage("", id="3", tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c"}]),
                 ToolMessage("ok", id="4", tool_call_id="c")],
    "send": Send("node", {"x": 1}), "interrupt": Interrupt(value="v", id="abc"),
    "exception": ValueError("boom"), "mixed": [1, HumanMessage("x", id="5"), {"a": 1}],
    "twins": [Point(1, 2), Point(1, 2)],
}


def no_pickle(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("pickle used")


def test_every_type_the_default_serializer_handles_round_trips_without_pickle(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("dumps", "loads", "dump", "load", "Pickler", "Unpickler"):
        monkeypatch.setattr(pickle, name, no_pickle)
    memory = InMemorySaver()
    with GitstateSaver(path) as saver:
        found = []
        for each in (memory, saver):
            stored = put(each, "values", values=VALUES)
            each.put_writes(stored, list(VALUES.items()), "task")
            found.append(each.get_tuple(stored))
            found.append(next(iter(each.list(config("values")))))
        expected, listed_memory, got, listed = found
        for key in VALUES:
            ours, theirs = got.checkpoint["channel_values"][key], expected.checkpoint["channel_values"][key]
            assert repr(ours) == repr(theirs) and type(ours) is type(theirs)
            assert ours == theirs
        assert [repr(w) for w in got.pending_writes] == [repr(w) for w in expected.pending_writes]
        assert repr(listed.checkpoint) == repr(got.checkpoint) and repr(listed_memory.checkpoint) == repr(
            expected.checkpoint)
        twins = got.checkpoint["channel_values"]["twins"]
        assert twins[0] == twins[1] and twins[0] is not twins[1]  # one blob, two objects
        assert list(got.checkpoint["channel_values"]["unsorted"]) == ["b", "a"]
    head = f"agents/{agent_id('values')}"
    files = git(path, "ls-tree", "-r", "--name-only", head).split()
    assert {"channels/str.json", "channels/uint64.json", "channels/list.json", "channels/unsorted.msgpack",
            "channels/tuple.msgpack", "channels/bytes.bytes", "channels/mixed/0.json",
            "channels/mixed/1.msgpack", "channels/messages/3.msgpack"} <= set(files)
    assert "channels/nested.msgpack" in files  # a tuple inside: JSON would give it back as a list
    assert json.loads(git(path, "show", f"{head}:channels/list.json")) == VALUES["list"]
    fsck(path)


class EachAlone(JsonPlusSerializer):
    """The default serializer under another class: the saver encodes list elements one by one."""


def test_a_list_encoded_in_one_piece_is_stored_as_its_elements_encoded_alone(path: str) -> None:
    """The default serializer's list is encoded in one call and cut into its elements: the
    same blobs, names and tree as encoding each element alone."""
    items = [value for value in VALUES.values() if not isinstance(value, (bytes, bytearray))]
    items += [[1, 2], {"b": [b"raw"]}, "x" * 70_000, list(range(70_000))]  # longer length fields
    trees = []
    for serde in (None, EachAlone()):
        saver = GitstateSaver(path, serde=serde)
        thread = f"alone {serde is not None}"
        stored = put(saver, thread, values={"items": items})
        assert repr(saver.get_tuple(stored).checkpoint["channel_values"]["items"]) == repr(
            saver.serde.loads_typed(saver.serde.dumps_typed(items)))
        trees.append(git(path, "rev-parse", f"agents/{agent_id(thread)}:channels/items").strip())
    assert trees[0] == trees[1]
    fsck(path)


def test_get_tuple_reads_a_list_in_one_piece_and_gives_new_objects_each_call(path: str) -> None:
    saver = GitstateSaver(path)
    stored = put(saver, "t", values={"messages": VALUES["messages"], "mixed": VALUES["mixed"]})
    for reader in (saver, GitstateSaver(path)):
        first, again = (reader.get_tuple(stored).checkpoint["channel_values"] for _ in range(2))
        assert first == again == {"messages": VALUES["messages"], "mixed": VALUES["mixed"]}
        assert all(a is not b for a, b in zip(first["messages"], again["messages"], strict=True))


def test_elements_changed_in_place_are_stored_again(path: str) -> None:
    """A step's list elements whose bytes equal the last step's take their blobs without
    hashing; one changed in place (same object) does not."""
    saver = GitstateSaver(path)
    first = [HumanMessage("one", id="1"), HumanMessage("two", id="2"), HumanMessage("three", id="3")]
    stored = put(saver, "t", values={"messages": first})
    first[1].content = "two, edited"  # the same object, changed in place
    stored = put(saver, "t", stored, values={"messages": [*first, HumanMessage("four", id="4")]})
    first[0].content = "one, edited"
    stored = put(saver, "t", stored, values={"messages": first[:2]})  # shorter, first changed
    for reader in (saver, GitstateSaver(path)):
        got = [t.checkpoint["channel_values"]["messages"] for t in reader.list(config("t"))]
        assert [[m.content for m in messages] for messages in got] == [
            ["one, edited", "two, edited"], ["one", "two, edited", "three", "four"],
            ["one", "two", "three"]]
    fsck(path)


def test_each_step_of_a_growing_list_reads_as_it_was_through_its_writer(path: str) -> None:
    """A step that appends to a list shares the last step's entries, not its tree: the
    writer's own reads of the earlier steps (from its caches) and git's are unchanged."""
    saver = GitstateSaver(path)
    messages: list[AnyMessage] = []
    stored = None
    for i in range(4):
        messages = [*messages, HumanMessage(f"message {i}", id=str(i))]
        stored = put(saver, "t", stored, values={"messages": messages})
    for reader in (saver, GitstateSaver(path)):
        got = [t.checkpoint["channel_values"]["messages"] for t in reader.list(config("t"))]
        assert [[m.content for m in step] for step in got] == [
            [f"message {i}" for i in range(n)] for n in (4, 3, 2, 1)]
    commits = git(path, "rev-list", "--all").split()
    folders = sorted(len(git(path, "ls-tree", f"{commit}:channels/messages").splitlines())
                     for commit in commits)
    assert folders == [1, 2, 3, 4]
    fsck(path)


def test_elements_taken_from_the_last_step_are_written_if_the_parent_lacks_them(path: str) -> None:
    """Elements whose bytes equal the last step's keep their SHA, but their blobs are written
    unless the new commit's parent holds them: here the thread was deleted and pruned."""
    saver = GitstateSaver(path)
    first = [HumanMessage("one", id="1"), HumanMessage("two", id="2")]
    put(saver, "t", values={"messages": first})
    saver.delete_thread("t")
    StateRepository.open(path).gc(prune=True, grace_seconds=0)  # the messages' blobs go
    stored = put(saver, "t", values={"messages": [*first, HumanMessage("three", id="3")]})
    assert GitstateSaver(path).get_tuple(stored).checkpoint["channel_values"]["messages"] == [
        *first, HumanMessage("three", id="3")]
    fsck(path)


def test_any_channel_name_or_checkpoint_id_makes_a_tree_git_accepts(path: str) -> None:
    names = ["", ".", "..", ".git", ".gitmodules", "git~1", "GIT~1", "/", "a/b", "nul\0", "~", "%7E",
             "x.json", " ", "é"]
    kinds = {"folder": lambda i: [Point(i, i)], "json": lambda i: i, "serde": lambda i: Point(i, 0)}
    memory = InMemorySaver()
    with GitstateSaver(path) as saver:
        for kind, value in kinds.items():
            for checkpoint_id in ("", "..", ".git"):  # a checkpoint id names its writes' folder
                thread = f"{kind} {checkpoint_id}"
                found = []
                for each in (memory, saver):
                    cp = checkpoint({name: value(i) for i, name in enumerate(names)}) | {"id": checkpoint_id}
                    stored = each.put(config(thread), cp, {"step": 0}, cp["channel_versions"])
                    each.put_writes(stored, [(name, value(i)) for i, name in enumerate(names)], "task")
                    found.append(each.get_tuple(config(thread)))
                expected, got = found
                values = (sorted(t.checkpoint["channel_values"].items()) for t in (got, expected))
                assert repr(next(values)) == repr(next(values))
                assert repr(got.pending_writes) == repr(expected.pending_writes)
                assert len(got.pending_writes) == len(names)
    fsck(path)


def test_a_value_no_encoding_holds_raises_and_writes_nothing(path: str) -> None:
    with GitstateSaver(path) as saver:
        stored = put(saver, "t", values={"a": 1})
        before = snapshot(StateRepository.open(saver.core.path))
        with pytest.raises(TypeError):
            put(saver, "t", stored, values={"a": 2**70})
        with pytest.raises(TypeError):
            saver.put_writes(stored, [("a", object())], "task")
        assert snapshot(StateRepository.open(saver.core.path)) == before


class Reversing(JsonPlusSerializer):
    """A user's serde (as an encrypting one would): its own types, bytes it alone reads;
    records the threads it runs in."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.threads.add(threading.get_ident())
        kind, data = super().dumps_typed(obj)
        return f"Reversed/{kind}", data[::-1]

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.threads.add(threading.get_ident())
        return super().loads_typed((data[0].removeprefix("Reversed/"), data[1][::-1]))


class Pausing(JsonPlusSerializer):
    """A serde that stops on one value until told to go on (``reached``, then ``go``)."""

    def __init__(self) -> None:
        super().__init__()
        self.pause_on: Any = None
        self.reached, self.go = threading.Event(), threading.Event()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if obj is self.pause_on:
            self.reached.set()
            assert self.go.wait(30)
        return super().dumps_typed(obj)


def test_the_users_serde_is_used_and_async_calls_leave_the_event_loop_free(path: str) -> None:
    serde = Reversing()
    saver = GitstateSaver(path, serde=serde)

    async def run() -> tuple[Any, int]:
        stored = await saver.aput(config("t"), checkpoint({"when": date(2025, 1, 1), "n": 1}),
                                  {"source": "input", "step": -1}, {"when": 1, "n": 1})
        await saver.aput_writes(stored, [("when", date(2025, 1, 2))], "task")
        return [t async for t in saver.alist(None)], threading.get_ident()

    listed, loop_thread = asyncio.run(run())
    assert listed[0].checkpoint["channel_values"] == {"when": date(2025, 1, 1), "n": 1}
    assert listed[0].pending_writes == [("task", "when", date(2025, 1, 2))]
    assert serde.threads and loop_thread not in serde.threads
    files = git(path, "ls-tree", "-r", "--name-only", f"agents/{agent_id('t')}").split()
    assert f"channels/when.hex-{b'Reversed/msgpack'.hex()}" in files and "channels/n.json" in files
    fsck(path)


# -- ids -----------------------------------------------------------------------------------

def test_awkward_thread_ids_and_namespaces_round_trip(path: str) -> None:
    namespaces = ["", "a:b|c:d", "ns with / slash 🙂"]
    with GitstateSaver(path) as saver:
        for thread in AWKWARD:
            for ns in namespaces:
                stored = put(saver, thread, values={"who": [thread, ns]}, ns=ns)
                saver.put_writes(stored, [("who", ns)], "task")
        listed = {(t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_ns"]): t
                  for t in saver.list(None)}
        assert set(listed) == {(thread, ns) for thread in AWKWARD for ns in namespaces}
        for (thread, ns), item in listed.items():
            assert item.checkpoint["channel_values"]["who"] == [thread, ns]
            assert item.pending_writes == [("task", "who", ns)]
            assert saver.get_tuple(config(thread, ns)).checkpoint["id"] == item.checkpoint["id"]
        assert len(list(saver.list({"configurable": {"thread_id": "a/b/c"}}))) == len(namespaces)
    branches = git(path, "for-each-ref", "--format=%(refname)", "refs/heads/").split()
    assert len(branches) == len(AWKWARD) * len(namespaces)
    for ref in branches:
        assert is_valid_agent_id(ref.removeprefix("refs/heads/agents/"))
        git(path, "check-ref-format", ref)
    fsck(path)


def test_a_namespace_given_as_a_str_enum_is_its_value(path: str) -> None:
    """A str subclass (an Enum's member) is taken as the plain string it holds."""

    class Namespace(str, Enum):
        INNER = "inner"

    with GitstateSaver(path) as saver:
        first = put(saver, "t", ns=Namespace.INNER)
        second = put(saver, "t", first, ns=Namespace.INNER)
        got = saver.get_tuple(config("t", "inner"))
        assert got is not None and got.checkpoint["id"] == second["configurable"]["checkpoint_id"]
        assert got.config["configurable"]["checkpoint_ns"] == "inner"
    fsck(path)


def test_a_thread_whose_agent_holds_another_thread_is_refused(path: str) -> None:
    with GitstateSaver(path) as saver:
        put(saver, "mine")
        head = git(path, "rev-parse", f"refs/heads/agents/{agent_id('mine')}").strip()
        git(path, "update-ref", f"refs/heads/agents/{agent_id('theirs')}", head)  # another thread's name
        with pytest.raises(InvalidArgumentError, match="holds commits of thread 'mine'"):
            put(saver, "theirs")
        assert saver.get_tuple(config("theirs")) is None


# -- rebuilds keep what the kept checkpoints reference ---------------------------------------

def test_prune_and_delete_for_runs_keep_what_kept_checkpoints_reference(path: str) -> None:
    shared = {"doc": {"text": "written once"}, "messages": VALUES["messages"], "point": Point(3, 4)}
    with GitstateSaver(path) as saver:
        for thread in ("runs", "prune", "copied"):  # values written by the first checkpoint only
            first = put(saver, thread, values=shared, run_id=f"{thread}-1")
            second = put(saver, thread, first, values={**shared, "n": 2}, new={"n": 1}, run_id=f"{thread}-2")
            saver.put_writes(second, [("n", 3)], "task")
            third = put(saver, thread, second, values={**shared, "n": 3}, new={"n": 2}, run_id=f"{thread}-3")
            saver.put_writes(third, [("n", 4), ("__error__", "boom")], "task")
        saver.copy_thread("copied", "copy")
        saver.delete_thread("copied")
        saver.delete_for_runs(["runs-1", "runs-3"])
        saver.prune(["prune"])
        StateRepository.open(path).gc(prune=True, grace_seconds=0)  # what nothing reaches is gone
        kept = saver.get_tuple(config("runs"))
        assert [t.metadata["run_id"] for t in saver.list(config("runs"))] == ["runs-2"]
        assert kept.checkpoint["channel_values"] == {**shared, "n": 2}
        assert kept.pending_writes == [("task", "n", 3)] and kept.parent_config is not None
        latest = saver.get_tuple(config("prune"))
        assert [t.metadata["run_id"] for t in saver.list(config("prune"))] == ["prune-3"]
        assert latest.checkpoint["channel_values"] == {**shared, "n": 3}
        assert latest.pending_writes == [("task", "__error__", "boom"), ("task", "n", 4)]
        assert [t.checkpoint["channel_values"].get("n") for t in saver.list(config("copy"))] == [3, 2, None]
        assert saver.get_tuple(config("copied")) is None
        saver.prune(["runs"], strategy="delete")
        assert list(saver.list(config("runs"))) == []
    fsck(path)


# -- gitstate's commands on threads ----------------------------------------------------------

def test_gitstate_log_show_diff_verify_and_retention_read_threads(path: str) -> None:
    with GitstateSaver(path) as saver:
        scenario(saver)
        agent = agent_id("research thread")
        repo = StateRepository.open(path)
        log = repo.log(agent)
        lineage, item = [], saver.get_tuple(config("research thread", ""))
        while item is not None:  # the latest checkpoint and its LangGraph parents
            lineage.append(item)
            item = saver.get_tuple(item.parent_config) if item.parent_config else None
        assert [(c.iteration, c.status) for c in log] == [(t.metadata["step"], t.metadata["source"])
                                                           for t in lineage]
        assert [c.trailers["LangGraph-Checkpoint"] for c in log] == [t.checkpoint["id"] for t in lineage]
        assert log[-1].message.startswith("step -1 input") and "update" in [c.status for c in log]
        state = repo.load(agent, model=None)
        assert state["checkpoint"]["id"] == saver.get_tuple(config("research thread")).checkpoint["id"]
        assert state["values"]["notes"][:2] == ["plan", "forked"]
        assert state["step"] == lineage[0].metadata["step"]
        assert "step" in repo.diff(agent, "latest~1").summary
        assert repo.verify().ok, repo.verify().problems
        names = repo.names(agent)
        assert names and all(name.startswith("leaf-") for name in names)  # the fork left a leaf
        before = dump(saver.core.path)
        repo.prune(agent, RetentionPolicy(keep_last=2), grace=timedelta(0))
        assert len(repo.log(agent)) == 2  # the current line: the fork and its next step
        assert dump(saver.core.path) == before  # the leaf's lineage holds every other checkpoint

        parent = None  # a thread without forks: retention removes what it does not keep
        for step in range(5):
            parent = put(saver, "linear", parent, values={"step": step}, step=step)
            saver.put_writes(parent, [("step", step + 1)], "task")
        repo.prune(agent_id("linear"), RetentionPolicy(keep_last=2), grace=timedelta(0))
        kept = list(saver.list(config("linear")))
        assert [t.metadata["step"] for t in kept] == [4, 3]
        assert [t.pending_writes for t in kept] == [[("task", "step", 5)], [("task", "step", 4)]]
        assert repo.verify().ok
    fsck(path)


def test_threads_travel_with_push_and_clone(tmp_path: Path, path: str) -> None:
    origin = StateRepository.init(tmp_path / "origin.git")
    with GitstateSaver(path) as saver:
        scenario(saver)
        local = StateRepository.open(saver.core.path)
        local.remote_add("origin", str(origin.path))
        assert all(r.ok for r in local.push("origin"))
        here = dump(saver.core.path)
    StateRepository.clone(str(origin.path), tmp_path / "clone.git")
    assert dump(str(tmp_path / "clone.git")) == here
    fsck(str(tmp_path / "clone.git"))


def test_rollback_and_fork_refuse_threads_and_leave_them_as_they_were(path: str) -> None:
    with GitstateSaver(path) as saver:
        scenario(saver)
    agent = agent_id("research thread")
    repo = StateRepository.open(path)
    before, stored = snapshot(repo), dump(path)
    target = repo.log(agent)[2].trailers["LangGraph-Checkpoint"]
    with pytest.raises(InvalidArgumentError, match=f"LangGraph thread.*checkpoint_id '{target}'"):
        repo.rollback(agent, "latest~2")
    with pytest.raises(InvalidArgumentError, match="LangGraph thread"):
        repo.rollback(agent, "latest~2", hard=True)
    with pytest.raises(InvalidArgumentError, match="LangGraph thread.*copy_thread"):
        repo.fork(agent, "latest~1", "copy")
    result = CliRunner().invoke(cli, ["--repo", path, "rollback", agent, "latest~1"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "graph.update_state" in result.stderr
    assert snapshot(repo) == before and dump(path) == stored


def test_a_tree_the_saver_did_not_write_raises_corrupt_object_error(path: str) -> None:
    """A commit with the saver's trailers but not its tree (as another tool may write it):
    every read names it; writes for it raise and are not recorded."""
    with GitstateSaver(path) as saver:
        stored = put(saver, "t", values={"a": 1})
        saver.put_writes(stored, [("a", 2)], "task")  # the head now holds writes
        ref = f"refs/heads/agents/{agent_id('t')}"
        head = git(path, "rev-parse", ref).strip()
        tree = subprocess.run(["git", "--git-dir", path, "mktree"], check=True, capture_output=True, text=True,
                              input=f"100644 blob {git(path, 'rev-parse', f'{head}:state.json').strip()}"
                                    "\tstate.json\n").stdout.strip()
        message = git(path, "log", "-1", "--format=%B", head)
        foreign = git(path, "commit-tree", tree, "-p", head, "-m", message).strip()
        git(path, "update-ref", ref, foreign, head)
        for read in (lambda: saver.get_tuple(config("t")), lambda: list(saver.list(config("t"))),
                     lambda: saver.put_writes(stored, [("a", 3)], "task")):
            with pytest.raises(CorruptObjectError, match=f"commit {foreign}"):
                read()
        git(path, "update-ref", ref, head, foreign)
        assert saver.get_tuple(config("t")).pending_writes == [("task", "a", 2)]


# -- concurrency -----------------------------------------------------------------------------

def write_chain(path: str, thread: str, label: str, count: int) -> None:
    saver = GitstateSaver(path)
    parent = None
    for i in range(count):
        parent = put(saver, thread, parent, values={"by": label, "i": i}, step=i)
        saver.put_writes(parent, [("by", label)], f"task-{label}")


def test_threads_and_processes_write_one_repository_at_once(path: str) -> None:
    child = subprocess.Popen([sys.executable, __file__, "chain", path, "shared", "process", "6"])
    workers = [threading.Thread(target=write_chain, args=(path, thread, f"thread-{i}", 6))
               for i, thread in enumerate(["shared", "shared", "own"])]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert child.wait() == 0
    saver = GitstateSaver(path)
    shared = list(saver.list(config("shared")))  # this process's two chains and the child's
    assert len(shared) == 3 * 6 and len(list(saver.list(config("own")))) == 6
    for item in shared:  # each chain intact: its parent is its writer's previous checkpoint
        label = item.checkpoint["channel_values"]["by"]
        assert item.pending_writes == [(f"task-{label}", "by", label)]
        if item.checkpoint["channel_values"]["i"]:
            parent = saver.get_tuple(item.parent_config)
            previous = item.checkpoint["channel_values"]["i"] - 1
            assert parent.checkpoint["channel_values"] == {"by": label, "i": previous}
    fsck(path)


def test_writes_may_arrive_before_their_checkpoint(path: str) -> None:
    with GitstateSaver(path) as saver:
        root = put(saver, "t")
        cp = checkpoint({"a": 1})
        early = threading.Thread(target=saver.put_writes,
                                 args=(config("t", "", cp["id"]), [("a", 2)], "task"))
        early.start()  # waits for the checkpoint: LangGraph runs both in the background
        saver.put(config("t", "", root["configurable"]["checkpoint_id"]), cp, {"step": 1}, {"a": 1})
        early.join()
        assert saver.get_tuple(config("t")).pending_writes == [("task", "a", 2)]
    impatient = GitstateSaver(path, writes_timeout=0.2)
    with pytest.raises(InvalidArgumentError, match="no checkpoint 'missing'"):
        impatient.put_writes(config("t", "", "missing"), [("a", 1)], "task")
    late = checkpoint({"a": 3}) | {"id": "missing"}  # it comes after its writes were given up
    impatient.put(config("t", "", cp["id"]), late, {"step": 2}, {"a": 2})
    assert impatient.get_tuple(config("t", "", "missing")).pending_writes == []


def test_writes_whose_commit_failed_are_not_recorded_later(path: str) -> None:
    """The caller is told what is stored: writes that raised never land with a later put."""
    saver = GitstateSaver(Core.open(path, lock_timeout=0.2))
    stored = put(saver, "t", values={"a": 1})
    with saver.core.store.agent_lock(agent_id("t")):  # another writer holds the thread
        with pytest.raises(ConcurrentUpdateError):
            saver.put_writes(stored, [("a", 2)], "task")
    put(saver, "t", stored, values={"a": 3})  # the thread's next put
    assert [t.pending_writes for t in saver.list(config("t"))] == [[], []]
    saver.put_writes(stored, [("a", 4)], "task")
    assert saver.get_tuple(stored).pending_writes == [("task", "a", 4)]
    fsck(path)


def test_a_known_blob_is_one_the_head_under_the_lock_reaches(path: str) -> None:
    """A put skips writing the list elements its parent's commit holds; that parent is read
    under the thread's lock, so a thread deleted and pruned meanwhile loses nothing."""
    serde = Pausing()
    saver = GitstateSaver(path, serde=serde)
    first = [HumanMessage("one", id="1"), HumanMessage("two", id="2")]
    stored = put(saver, "t", values={"messages": first})
    serde.pause_on = third = HumanMessage("three", id="3")
    later = threading.Thread(target=put, args=(saver, "t", stored),
                             kwargs={"values": {"messages": [*first, third]}})
    later.start()
    assert serde.reached.wait(30)  # the put is encoding its values: it holds no lock yet
    GitstateSaver(path).delete_thread("t")
    StateRepository.open(path).gc(prune=True, grace_seconds=0)  # the first messages' blobs go
    serde.go.set()
    later.join()
    assert saver.get_tuple(config("t")).checkpoint["channel_values"]["messages"] == [*first, third]
    fsck(path)


def test_the_saver_starts_automatic_maintenance_as_saves_do(path: str) -> None:
    StateRepository.open(path).configure_maintenance(auto_objects=8, background=False)
    with GitstateSaver(path) as saver:
        parent = None
        for step in range(12):
            parent = put(saver, "t", parent, values={"messages": VALUES["messages"][: step % 4 + 1]})
    # each put writes one small pack (two files, counted as two objects): gc merged them
    assert 0 < len(list(Path(path, "objects", "pack").glob("*.pack"))) < 12
    assert len(list(saver.list(config("t")))) == 12
    fsck(path)


# -- the example of docs/langgraph.md -------------------------------------------------------

def test_the_documented_example_runs(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "langgraph.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)[1]
    env = {**os.environ, "TMPDIR": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
           f"{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert "human: yes\n" in out and "human: skip the tool\n" in out
    rows = out.split("COMMIT", 1)[1].strip().splitlines()[1:]  # gitstate log of the thread
    assert " update " in rows[0] and "step -1 input" in rows[-1]
    # six steps; the first one shows twice when its pending writes came after its put's commit
    # (depends on LangGraph's threads): the commit recording them again has the root as its
    # first parent, as a root checkpoint has none
    steps = [re.search(r"step -?\d+ \w+", row)[0] for row in rows]
    assert len(set(steps)) == 6 and len(steps) - 6 == steps.count("step -1 input") - 1, rows
    for repo in tmp_path.glob("*/threads.git"):
        fsck(str(repo))


if __name__ == "__main__":  # the child processes of the tests above
    if sys.argv[1] == "dump":
        print(dump(sys.argv[2]), end="")
    elif sys.argv[1] == "chain":
        write_chain(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
