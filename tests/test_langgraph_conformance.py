"""LangGraph's official checkpointer conformance suite, run on GitstateSaver.

All 81 tests (58 base + 23 extended) through the async API, and the same suite through the
sync methods (an adapter whose async methods call the saver's sync ones). The suite calls a
saver "FULL" even when it implements no extended capability, so the counts are asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from conftest import fsck
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from gitstate import StateRepository
from gitstate.langgraph import GitstateSaver

EXPECTED = {"put": 17, "put_writes": 10, "get_tuple": 10, "list": 16, "delete_thread": 5,
            "delete_for_runs": 7, "copy_thread": 8, "prune": 8}


class SyncAdapter(BaseCheckpointSaver[str]):
    """The suite only calls async methods: these call the saver's sync methods."""

    def __init__(self, saver: GitstateSaver):
        super().__init__(serde=saver.serde)
        self.saver = saver

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        return self.saver.get_tuple(config)

    async def alist(self, config: Any, *, filter: dict[str, Any] | None = None, before: Any = None,
                    limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        for item in self.saver.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.saver.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: Any, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        self.saver.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.saver.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.saver.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.saver.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.saver.prune(thread_ids, strategy=strategy)


def run_suite(tmp_path: Path, name: str, wrap: Any) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Run the whole suite, a new repository per capability; (passed, failed) per capability."""
    repos: list[Path] = []
    failures: list[str] = []

    @checkpointer_test(name=name)
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        repo = StateRepository.init(tmp_path / f"repo-{len(repos)}.git")
        repo.configure_maintenance(auto_objects=0)  # as the repo fixture: only what the suite wrote
        repos.append(Path(repo.path))
        with GitstateSaver(repo) as saver:
            yield wrap(saver)

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}: {error}")

    report = asyncio.run(validate(factory, progress=ProgressCallbacks(on_test_result=on_result)))
    for repo in repos:
        fsck(str(repo))
    counts = {cap: (result.tests_passed, result.tests_failed) for cap, result in report.results.items()}
    return counts, failures


def test_all_81_conformance_tests_pass_through_the_async_api(tmp_path: Path) -> None:
    counts, failures = run_suite(tmp_path, "GitstateSaver (async)", lambda saver: saver)
    assert failures == []
    assert counts == {cap: (n, 0) for cap, n in EXPECTED.items()}
    assert sum(n for n, _failed in counts.values()) == 81


def test_all_81_conformance_tests_pass_through_the_sync_methods(tmp_path: Path) -> None:
    counts, failures = run_suite(tmp_path, "GitstateSaver (sync)", SyncAdapter)
    assert failures == []
    assert counts == {cap: (n, 0) for cap, n in EXPECTED.items()}
