"""Helpers shared by the history, prune and diff tests."""

from __future__ import annotations

from concurrent_writer import ConcurrentWriter
from conftest import git, grow, snapshot

from gitstate import AgentState, StateRepository


def build(repo: StateRepository, agent_id: str = "a", count: int = 6,
          names: dict[int, str] | None = None) -> list[str]:
    """Save ``count`` checkpoints (iterations 1..count); return their ids, oldest first."""
    state = AgentState(agent_id=agent_id)
    ids = []
    for i in range(1, count + 1):
        grow(state)
        ids.append(repo.save(state, name=(names or {}).get(i)).checkpoint_id)
    return ids


def ids_of(repo: StateRepository, agent_id: str = "a") -> list[str]:
    """Checkpoint ids of the agent's history, oldest first."""
    return [c.checkpoint_id for c in reversed(repo.log(agent_id))]


def run_beside_writer(repo: StateRepository, operation) -> tuple[list[str], object]:
    """Run ``operation()`` while another process keeps saving to agent ``a``."""
    with ConcurrentWriter(repo.path, "a") as writer:
        writer.wait_for(3)
        result = operation()
        writer.wait_for(3)
        return writer.stop(), result


def logs(repo: StateRepository) -> dict[str, str]:
    return {path: digest for path, digest in snapshot(repo).items() if path.startswith("logs/")}


def inject_foreign_commit(repo: StateRepository) -> dict[str, object]:
    """Make git itself (a writer outside gitstate) move agent a's branch right after the
    operation read the history under the lock; returns what the refs were then."""
    original, seen = repo._core.history, {}

    def history_then_foreign_commit(agent_id):
        history = original(agent_id)
        if not seen:
            head = git(repo, "rev-parse", "agents/a").strip()
            commit = git(repo, "commit-tree", f"{head}^{{tree}}", "-p", head, "-m", "foreign").strip()
            git(repo, "update-ref", "refs/heads/agents/a", commit, head)
            seen["refs"] = git(repo, "for-each-ref")
            seen["logs"] = logs(repo)
        return history

    repo._core.history = history_then_foreign_commit
    return seen
