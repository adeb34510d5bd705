"""Applying a retention policy: ``prune`` rewrites agents' histories, ``reclaim`` frees the space."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import checkpoints
from .core import Core
from .errors import AgentNotFoundError, InvalidArgumentError
from .git import reclaim as engine
from .git.reclaim import ReclaimResult
from .ids import validate_agent_id
from .retention import Decision, RetentionPolicy, plan
from .rewrite import rewrite
from .settings import grace_period


@dataclass(frozen=True)
class PruneResult:
    """The plan of each agent (commit SHAs as before the rewrite), and what was removed."""

    decisions: dict[str, list[Decision]] = field(default_factory=dict)
    removed: int = 0
    reclaimed: ReclaimResult = ReclaimResult()
    dry_run: bool = False


def prune(core: Core, agent_id: str | None, policy: RetentionPolicy, *, dry_run: bool = False,
          now: datetime | None = None, grace: timedelta | None = None,
          progress: Callable[[int, int], None] | None = None) -> PruneResult:
    """Apply ``policy`` to one agent (or every agent when ``agent_id`` is None).

    Each agent's history is rewritten to the checkpoints the policy keeps (see
    :func:`gitstate.retention.plan`; ids stay, tags follow), under the agent's
    lock; then :func:`reclaim` frees the space (a repository it would refuse
    raises before any history is rewritten). ``dry_run`` only plans. ``now``
    (default: the current time) anchors ``keep_within``. ``progress(done,
    total)`` is called after each agent.
    """
    if not isinstance(policy, RetentionPolicy):
        raise InvalidArgumentError(f"policy must be a RetentionPolicy, not {type(policy).__name__}")
    now = datetime.now(timezone.utc) if now is None else now
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise InvalidArgumentError(f"now must be a timezone-aware datetime, got {now!r}")
    grace = grace_period(core.path, grace)
    if agent_id is not None:
        validate_agent_id(agent_id, existing=True)  # not REMOTE/AGENT, which is read-only
        core.head(agent_id)
    if not dry_run:  # a repository reclaim would refuse: refuse before rewriting anything
        engine.check_roots(core.store)
    agents = [agent_id] if agent_id is not None else [a.agent_id for a in checkpoints.agents(core)]
    decisions: dict[str, list[Decision]] = {}
    removed = 0
    for done, agent in enumerate(agents, 1):
        try:
            decisions[agent] = (plan(checkpoints.log(core, agent), policy, now) if dry_run
                                else _prune_agent(core, agent, policy, now))
        except AgentNotFoundError:
            if agent_id is not None:
                raise
        else:  # (an agent deleted meanwhile is skipped)
            removed += sum(not d.keep for d in decisions[agent])
        if progress is not None:
            progress(done, len(agents))
    if dry_run:
        return PruneResult(decisions, removed, dry_run=True)
    return PruneResult(decisions, removed, reclaim(core, grace) if removed else ReclaimResult())


def _prune_agent(core: Core, agent_id: str, policy: RetentionPolicy, now: datetime) -> list[Decision]:
    with core.store.agent_lock(agent_id) as lock:
        history = core.history(agent_id)
        names = core.names(agent_id)
        decisions = plan([core.checkpoint(c, agent_id, names.get(c.id, ())) for c in history],
                         policy, now)
        remove = {c.id for c, d in zip(history, decisions, strict=True) if not d.keep}
        if remove:
            rewrite(core.store, lock, agent_id, history, remove)
    return decisions


def reclaim(core: Core, grace: timedelta | None = None) -> ReclaimResult:
    """Delete the objects proven unreachable and older than the grace period
    (:func:`gitstate.settings.grace_period`).

    What is kept and when it stops instead: docs/guarantees.md. ``grace=timedelta(0)``
    is safe only when no other process writes to the repository (like ``git gc
    --prune=now``).
    """
    return engine.reclaim(core.store, grace_period(core.path, grace).total_seconds())
