"""Seeded workloads: the same sequence of agent states for gitstate and every anchor.

Each workload yields ``(agent_id, AgentState)`` pairs, one per checkpoint, built
from a seeded random generator and a fake clock, so two runs produce the same
bytes. States are mutated in place between checkpoints, the way an agent's
state grows; a consumer must save (or copy) a state before taking the next.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

from gitstate import AgentState

SEED = 20240601
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    checkpoints: int  # total saves
    make: Callable[["Text", int], Iterator[tuple[str, AgentState]]]


class Text:
    """Seeded pseudo-prose (words from a fixed random vocabulary) and a fake clock."""

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = ["".join(self.rng.choice(letters) for _ in range(self.rng.randint(2, 10)))
                      for _ in range(4000)]
        self.tick = 0

    def prose(self, size: int) -> str:
        out, length = [], 0
        while length < size:
            word = self.rng.choice(self.words)
            out.append(word)
            length += len(word) + 1
        return " ".join(out)[:size]

    def now(self) -> str:
        self.tick += 1
        return (START + timedelta(seconds=self.tick)).isoformat()


def _agent(text: Text, agent_id: str) -> AgentState:
    stamp = text.now()
    return AgentState(agent_id=agent_id, agent_name="auditor", agent_type="analysis",
                      task="audit the payment service for injection flaws",
                      system_prompt=text.prose(600), status="running", created_at=stamp,
                      last_updated=stamp, started_at=stamp)


def _step(state: AgentState, text: Text, size: int, keep: int = 0) -> None:
    """One iteration: a ~``size``-byte message and an action; keep only the last ``keep``."""
    stamp = text.now()
    state.iteration += 1
    state.messages.append({"role": "assistant", "content": text.prose(size), "timestamp": stamp})
    state.actions_taken.append({"iteration": state.iteration, "timestamp": stamp,
                                "tool": "read_file", "path": f"src/module_{state.iteration}.py"})
    state.total_tokens += size // 4
    state.tool_calls += 1
    if keep:
        del state.messages[:-keep]
        del state.actions_taken[:-keep]
    state.__dict__["last_updated"] = stamp  # in place: no re-validation of the whole model


def growing(steps: int, size: int, initial: int = 0, keep: int = 0):
    """One agent; each checkpoint adds a ``size``-byte message (keeping the last ``keep``)."""
    def make(text: Text, scale: int) -> Iterator[tuple[str, AgentState]]:
        state = _agent(text, "auditor-1")
        for _ in range(initial // 1000):
            _step(state, text, 1000)
        for _ in range(max(1, steps // scale)):
            _step(state, text, size, keep)
            yield state.agent_id, state
    return make


def chat(messages: int, steps: int, size: int):
    """One agent whose state is a chat history: ``messages`` messages of ~``size`` bytes,
    then one more per checkpoint (many small objects, as a long conversation is)."""
    def say(state: AgentState, text: Text) -> None:
        role = ("user", "assistant")[len(state.messages) % 2]
        state.messages.append({"role": role, "content": text.prose(size), "timestamp": text.now()})

    def make(text: Text, scale: int) -> Iterator[tuple[str, AgentState]]:
        state = _agent(text, "chatter-1")
        for _ in range(messages):
            say(state, text)
        for _ in range(max(1, steps // scale)):
            say(state, text)
            state.iteration += 1
            state.__dict__["last_updated"] = state.messages[-1]["timestamp"]
            yield state.agent_id, state
    return make


def many_agents(agents: int, per_agent: int):
    """``agents`` agents saving ``per_agent`` checkpoints each, round-robin."""
    def make(text: Text, scale: int) -> Iterator[tuple[str, AgentState]]:
        states = [_agent(text, f"worker-{i:05d}") for i in range(max(1, agents // scale))]
        for _ in range(per_agent):
            for state in states:
                _step(state, text, 300)
                yield state.agent_id, state
    return make


WORKLOADS = {
    "S": Workload("S", "growing state, ~1 KB per step", 300, growing(300, 1000)),
    "L": Workload("L", "~1 MB state, +1 KB per checkpoint", 200, growing(200, 1000, initial=1_000_000)),
    "W": Workload("W", "10 KB states", 1000, growing(1000, 1000, keep=8)),
    "M": Workload("M", "chat history: 1,000 messages of ~1 KB, +1 per checkpoint", 200,
                  chat(1000, 200, 1000)),
    "H": Workload("H", "one agent, 10,000 checkpoints", 10_000, growing(10_000, 300, keep=4)),
    "A": Workload("A", "10,000 agents x 3 checkpoints", 30_000, many_agents(10_000, 3)),
}
