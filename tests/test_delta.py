"""The delta encoder: git's format, checked by applying deltas with dulwich and with git."""

from __future__ import annotations

import random

from dulwich.pack import apply_delta
from hypothesis import given, settings, strategies as st

from conftest import examples, fsck, git, grow
from gitstate import AgentState, StateRepository, codec
from gitstate.git.delta import create_delta


def rebuilt(base: bytes, target: bytes) -> bytes:
    return b"".join(apply_delta(base, create_delta(base, target)))


@settings(max_examples=examples(3))
@given(st.binary(max_size=400), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 40),
                                                   st.binary(max_size=60)), max_size=6))
def test_any_edit_round_trips(base: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    target = bytearray(base)
    for at, cut, insert in edits:
        target[at:at + cut] = insert
    assert rebuilt(base, bytes(target)) == bytes(target)


def test_large_copies_are_split_and_moved_content_is_found() -> None:
    rng = random.Random(7)
    lines = [b"%d %s\n" % (i, rng.randbytes(30).hex().encode()) for i in range(6000)]
    base = b"".join(lines)  # ~400 KB: copies longer than git's 64 KB limit
    moved = b"".join(lines[100:] + lines[:100] + [b"new line\n"])
    delta = create_delta(base, moved)
    assert rebuilt(base, moved) == moved
    assert len(delta) < 200  # two copies and one short insert, not the content again
    assert rebuilt(b"", base) == base and rebuilt(base, b"") == b""


def test_consecutive_states_give_small_deltas_git_can_read(repo: StateRepository) -> None:
    repo.configure_maintenance(auto_objects=0)
    state = AgentState(agent_id="a1")
    states = []
    for _ in range(30):
        grow(state)
        repo.save(state)
        states.append(codec.encode(state.model_dump(mode="json")))
    for newer, older in zip(states[1:], states):
        assert len(create_delta(newer, older)) < 300
    repo.gc()
    fsck(repo)
    assert git(repo, "show", "agents/a1~29:state.json").encode() == states[0]
