"""GitstateSaver beyond the conformance suite: real graphs, reopening, values, ids, rebuilds,
concurrency, gitstate's own commands on threads, and what stock git says of it all."""

from __future__ import annotations

import asyncio
import json
import operator
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import fsck, git, snapshot
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Interrupt, Send, StateSnapshot, interrupt

from gitstate import StateRepository
from gitstate.errors import InvalidArgumentError
from gitstate.ids import is_valid_agent_id
from gitstate.langgraph import GitstateSaver, agent_id

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


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
        return UUID.sub(lambda match: ids(match[0]), value)
    return value


def config_ids(config: Any, ids: Ids) -> Any:
    if not config:
        return None
    conf = config["configurable"]
    return (ids.ns(conf.get("checkpoint_ns", "")), ids(conf["checkpoint_id"]) if "checkpoint_id" in conf else None)


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
            normal(checkpoint, ids), {k: v for k, v in normal(dict(item.metadata), ids).items() if k != "run_id"},
            [(normal(value, ids), channel) for _task, channel, value in item.pending_writes]))
    return [(ns, list(reversed(items))) for ns, items in found.items()]


def test_a_real_graph_gives_the_same_states_and_history_as_in_memory(tmp_path: Path) -> None:
    expected, thread = scenario(InMemorySaver())
    with GitstateSaver(tmp_path / "threads.git") as saver:
        seen, _ = scenario(saver)
        assert normal(seen, Ids()) == normal(expected, Ids())
        stored = tuples(saver, thread)
    reference = InMemorySaver()
    scenario(reference)
    assert stored == tuples(reference, thread)
    assert len(stored) == 3  # the root namespace and two runs of the subgraph
    fsck(str(tmp_path / "threads.git"))


def test_a_real_graph_gives_the_same_states_and_history_as_in_memory_async(tmp_path: Path) -> None:
    async def run() -> tuple[Any, Any, Any, Any]:
        memory = InMemorySaver()
        expected, thread = await ascenario(memory)
        async with GitstateSaver(tmp_path / "threads.git") as saver:
            seen, _ = await ascenario(saver)
            return expected, seen, tuples(memory, thread), tuples(saver, thread)

    expected, seen, memory_tuples, stored = asyncio.run(run())
    assert normal(seen, Ids()) == normal(expected, Ids())
    assert stored == memory_tuples
    fsck(str(tmp_path / "threads.git"))
