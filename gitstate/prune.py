"""Applying a retention policy: ``prune`` rewrites agents' histories, ``reclaim`` frees the space."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Optional

from .errors import AgentNotFoundError, InvalidArgumentError
from .git.reclaim import ReclaimResult, check_roots, reclaim
from .retention import Decision, RetentionPolicy, plan
from .rewrite import rewrite

if TYPE_CHECKING:
    from .repository import StateRepository

GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class PruneResult:
    """The plan of each agent (commit SHAs as before the rewrite), and what was removed."""

    decisions: dict[str, list[Decision]] = field(default_factory=dict)
    removed: int = 0
    reclaimed: ReclaimResult = ReclaimResult()
    dry_run: bool = False


class PruneMixin:
    """prune and reclaim (mixed into ``StateRepository``)."""

    def prune(self: "StateRepository", agent_id: Optional[str], policy: RetentionPolicy, *,
              dry_run: bool = False, now: Optional[datetime] = None,
              grace: Optional[timedelta] = None,
              progress: Optional[Callable[[int, int], None]] = None) -> PruneResult:
        """Apply ``policy`` to one agent (or every agent when ``agent_id`` is None).

        Each agent's history is rewritten to the checkpoints the policy keeps
        (see :func:`gitstate.retention.plan`; ids stay, tags follow), under
        the agent's lock; then :meth:`reclaim` frees the space (a repository
        it would refuse raises before any history is rewritten). ``dry_run``
        only plans. ``now`` (default: the current time) anchors ``keep_within``.
        ``progress(done, total)`` is called after each agent.
        """
        if not isinstance(policy, RetentionPolicy):
            raise InvalidArgumentError(f"policy must be a RetentionPolicy, not {type(policy).__name__}")
        now = datetime.now(timezone.utc) if now is None else now
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise InvalidArgumentError(f"now must be a timezone-aware datetime, got {now!r}")
        grace = _grace(grace)
        if agent_id is not None:
            self._head(agent_id)
        if not dry_run:  # a repository reclaim would refuse: refuse before rewriting anything
            check_roots(self._store)
        agents = [agent_id] if agent_id is not None else [a.agent_id for a in self.agents()]
        decisions: dict[str, list[Decision]] = {}
        removed = 0
        for done, agent in enumerate(agents, 1):
            try:
                decisions[agent] = (plan(self.log(agent), policy, now) if dry_run
                                    else self._prune_agent(agent, policy, now))
            except AgentNotFoundError:
                if agent_id is not None:
                    raise
            else:  # (an agent deleted meanwhile is skipped)
                removed += sum(not d.keep for d in decisions[agent])
            if progress is not None:
                progress(done, len(agents))
        if dry_run:
            return PruneResult(decisions, removed, dry_run=True)
        return PruneResult(decisions, removed, self.reclaim(grace=grace) if removed else ReclaimResult())

    def _prune_agent(self: "StateRepository", agent_id: str, policy: RetentionPolicy,
                     now: datetime) -> list[Decision]:
        with self._store.agent_lock(agent_id) as lock:
            history = self._history(agent_id)
            names = self._names(agent_id)
            checkpoints = [self._checkpoint(c, agent_id, tuple(names.get(c.id, ()))) for c in history]
            decisions = plan(checkpoints, policy, now)
            remove = {c.id for c, d in zip(history, decisions) if not d.keep}
            if remove:
                rewrite(self._store, lock, agent_id, history, remove)
        return decisions

    def reclaim(self: "StateRepository", *, grace: Optional[timedelta] = None) -> ReclaimResult:
        """Delete the objects proven unreachable and older than ``grace`` (default 10 min).

        What is kept and when it stops instead: docs/guarantees.md.
        ``grace=timedelta(0)`` is safe only when no other process writes to the
        repository (like ``git gc --prune=now``).
        """
        return reclaim(self._store, _grace(grace).total_seconds())


def _grace(grace: Optional[timedelta]) -> timedelta:
    if grace is None:
        return GRACE
    if not isinstance(grace, timedelta) or grace < timedelta(0):
        raise InvalidArgumentError(f"grace must be a non-negative timedelta, got {grace!r}")
    return grace
