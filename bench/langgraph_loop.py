"""LangGraph's 300-step message loop with SqliteSaver and GitstateSaver, side by side.

    python bench/langgraph_loop.py                    # 300 super-steps, 3 rounds of both savers
    python bench/langgraph_loop.py --steps 60 --rounds 1   # a quick run
    python bench/langgraph_loop.py --markdown out.md --json figures.json

The graph: one ``messages`` channel (``add_messages``); a fake model node appends a
deterministic ~1 KB AI message with a tool call, a fake tool node a ~2 KB tool message;
they alternate for ``--steps`` super-steps (302 checkpoints for 300), on one thread, with
``durability="sync"``. Each saver runs in a fresh process: the writer (per-step times:
between two consecutive stream updates), then, after it exited, the bytes of its files
(gitstate: the repository after its automatic maintenance, default settings; SQLite: the
database file and any -wal/-shm), then a reader process: ``get_tuple`` of the latest
checkpoint (the first call, then the median of 15) and ``list`` of the whole thread (the
first call in the process, then the median of 3). That pair runs ``--rounds`` times per
saver, in alternating order (SQLite first in even rounds, gitstate first in odd ones), each
round into new files, so that both savers see the same spells of a shared machine: step
times are the median (and p90) of every round's steps, the other figures the median of the
rounds' figures, and the table ends with each round's median step and the median step of
each fifth of the run (pooled over the rounds: the message list grows with the steps, and
what a step costs with it). Targets (issue 12):
bytes at least 10x smaller, median step no higher, ``list`` at most 0.2x, ``get_tuple`` no
slower. A last writer runs with automatic maintenance off, to show what its background gc
costs the steps, and the run ends with the file system's cost of a new file and of a ref
update.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from bench.run import file_bytes, file_system_costs, rss_mb  # noqa: E402
from bench.workloads import Text  # noqa: E402

THREAD = {"configurable": {"thread_id": "bench-thread"}}
READS = 15
PARTS = 5  # the run's steps in fifths, for the median step of each


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(checkpointer: Any, steps: int) -> Any:
    text = Text()

    def model(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        return {"messages": [AIMessage(content=text.prose(900), id=f"ai-{n}", tool_calls=[
            {"name": "search", "args": {"query": text.prose(60)}, "id": f"call-{n}"}])]}

    def tool(state: State) -> dict[str, Any]:
        n = len(state["messages"])
        call = state["messages"][-1].tool_calls[0]["id"]
        return {"messages": [ToolMessage(content=text.prose(2000), id=f"tool-{n}", tool_call_id=call)]}

    def route(to: str) -> Any:
        return lambda state: END if len(state["messages"]) > steps else to

    graph = StateGraph(State)
    graph.add_node("model", model)
    graph.add_node("tool", tool)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route("tool"), ["tool", END])
    graph.add_conditional_edges("tool", route("model"), ["model", END])
    return graph.compile(checkpointer=checkpointer)


def open_saver(kind: str, path: str) -> Any:
    if kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver
        return SqliteSaver(sqlite3.connect(path, check_same_thread=False))
    from gitstate.langgraph import GitstateSaver
    return GitstateSaver(path)


def child_write(kind: str, path: str, steps: int) -> dict[str, Any]:
    saver = open_saver(kind, path)
    graph = build_graph(saver, steps)
    times = []
    start = time.perf_counter()
    for _update in graph.stream({"messages": [HumanMessage("audit the payment service", id="h-0")]},
                                {**THREAD, "recursion_limit": steps + 10}, durability="sync",
                                stream_mode="updates"):
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return {"times": times, "rss_mb": rss_mb()}


def child_read(kind: str, path: str) -> dict[str, Any]:
    saver = open_saver(kind, path)
    start = time.perf_counter()
    latest = saver.get_tuple(THREAD)
    first_get = time.perf_counter() - start
    gets = []
    for _ in range(READS):
        start = time.perf_counter()
        saver.get_tuple(THREAD)
        gets.append(time.perf_counter() - start)
    lists, count = [], 0
    for _ in range(3):
        start = time.perf_counter()
        count = sum(1 for _tuple in saver.list(THREAD))
        lists.append(time.perf_counter() - start)
    return {"get_first": first_get, "get_median": statistics.median(gets), "list_first": lists[0],
            "list_median": statistics.median(lists), "checkpoints": count,
            "messages": len(latest.checkpoint["channel_values"]["messages"])}


def in_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(kind: str, root: Path, steps: int) -> dict[str, Any]:
    path = str(root / ("sqlite.db" if kind == "sqlite" else "threads.git"))
    if kind == "gitstate-no-maintenance":  # a diagnostic: the writer alone, its small packs unmerged
        from gitstate import StateRepository
        path = str(root / "threads-no-maintenance.git")
        StateRepository.init(path).configure_maintenance(auto_objects=0)
        os.sync()
        written = in_child("write", "gitstate", path, str(steps))
        return {"bytes": file_bytes(path), "times": written["times"]}
    os.sync()
    written = in_child("write", kind, path, str(steps))
    files = (path, path + "-wal", path + "-shm")
    size = (sum(os.path.getsize(p) for p in files if os.path.exists(p)) if kind == "sqlite"
            else file_bytes(path))
    read = in_child("read", kind, path)
    return {"bytes": size, "times": written["times"], "writer_rss_mb": written["rss_mb"], **read}


def part_bounds(steps: int) -> list[int]:
    """Where each fifth of ``steps`` steps starts, and the end (fewer parts for fewer steps)."""
    parts = min(PARTS, steps)
    return [round(k * steps / parts) for k in range(parts + 1)]


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One saver's figures over its rounds: step times pooled, the rest the rounds' median."""
    times = sorted(t for r in rounds for t in r["times"])
    counts = {(r["checkpoints"], r["messages"]) for r in rounds}
    if len(counts) != 1:
        raise SystemExit(f"the rounds read different histories: {sorted(counts)}")
    bounds = part_bounds(len(rounds[0]["times"]))
    return {"step_ms": statistics.median(times) * 1000,
            "part_step_ms": [statistics.median(t for r in rounds for t in r["times"][lo:hi]) * 1000
                             for lo, hi in pairwise(bounds)],
            "step_p90_ms": times[int(0.9 * (len(times) - 1))] * 1000,
            "round_step_ms": [statistics.median(r["times"]) * 1000 for r in rounds],
            **{key: statistics.median(r[key] for r in rounds)
               for key in ("bytes", "writer_rss_mb", "get_first", "get_median", "list_first",
                           "list_median")},
            "checkpoints": rounds[0]["checkpoints"], "messages": rounds[0]["messages"]}


def table(results: dict[str, dict[str, Any]], steps: int, rounds: int, costs: dict[str, float]) -> str:
    git, lite = results["gitstate"], results["sqlite"]
    rows = [
        ("bytes on disk after the writer exited", "bytes", lambda v: f"{v / 1e6:.2f} MB",
         "<= 0.1x", lambda r: r <= 0.1),
        ("median time per super-step", "step_ms", lambda v: f"{v:.2f} ms", "<= 1x", lambda r: r <= 1),
        ("list of the whole thread (first call)", "list_first", lambda v: f"{v * 1000:.0f} ms",
         "<= 0.2x", lambda r: r <= 0.2),
        ("get_tuple of the latest (median of 15)", "get_median", lambda v: f"{v * 1000:.2f} ms",
         "<= 1x", lambda r: r <= 1),
        ("list of the whole thread (median of 3)", "list_median", lambda v: f"{v * 1000:.0f} ms", "", None),
        ("get_tuple of the latest (first call)", "get_first", lambda v: f"{v * 1000:.2f} ms", "", None),
        ("p90 time per super-step", "step_p90_ms", lambda v: f"{v:.2f} ms", "", None),
        ("writer peak memory", "writer_rss_mb", lambda v: f"{v:.0f} MB", "", None),
    ]
    lines = [f"LangGraph message loop: {steps} super-steps, {git['checkpoints']} checkpoints, "
             f"{git['messages']} messages, {rounds} rounds of each saver "
             f"(python {platform.python_version()}, {os.cpu_count()} cpus)",
             "", "| figure | GitstateSaver | SqliteSaver | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for title, key, shown, target, check in rows:
        ratio = git[key] / lite[key] if lite[key] else float("inf")
        met = "" if check is None else ("yes" if check(ratio) else "NO")
        lines.append(f"| {title} | {shown(git[key])} | {shown(lite[key])} | {ratio:.3f}x | {target} "
                     f"| {met} |")
    quiet = results["gitstate-no-maintenance"]
    quiet_ms = statistics.median(quiet["times"]) * 1000
    each = {kind: ", ".join(f"{ms:.2f}" for ms in results[kind]["round_step_ms"])
            for kind in ("gitstate", "sqlite")}
    bounds = part_bounds(steps)
    spans = ", ".join(f"{lo + 1}-{hi}" for lo, hi in pairwise(bounds))
    parts = {kind: ", ".join(f"{ms:.2f}" for ms in results[kind]["part_step_ms"])
             for kind in ("gitstate", "sqlite")}
    lines += ["", f"Median step of each round (ms): GitstateSaver {each['gitstate']}; "
              f"SqliteSaver {each['sqlite']}.",
              f"Median step of steps {spans} (ms, all rounds): GitstateSaver {parts['gitstate']}; "
              f"SqliteSaver {parts['sqlite']}.",
              f"Without automatic maintenance (gitstate.autoobjects=0, the writer alone): median "
              f"step {quiet_ms:.2f} ms ({quiet_ms / lite['step_ms']:.3f}x), "
              f"{quiet['bytes'] / 1e6:.2f} MB of unmerged small packs ({quiet['bytes'] / lite['bytes']:.3f}x).",
              f"File system here (median of 200): a new file {costs['create_ms']:.3f} ms, "
              f"replacing a file by rename (a ref update) {costs['replace_ms']:.3f} ms."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 100), metavar="N",
                        help="writer and reader runs per saver, in alternating order (default 3)")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--json", help="write the raw figures to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, kind, path, *rest = args.child
        result = child_write(kind, path, int(rest[0])) if role == "write" else child_read(kind, path)
        print(json.dumps(result))
        return
    root = Path(tempfile.mkdtemp(prefix="gitstate-langgraph-"))
    try:
        rounds: dict[str, list[dict[str, Any]]] = {"sqlite": [], "gitstate": []}
        for number in range(args.rounds):
            folder = root / f"round-{number}"
            folder.mkdir()
            for kind in ("sqlite", "gitstate") if number % 2 == 0 else ("gitstate", "sqlite"):
                rounds[kind].append(run(kind, folder, args.steps))
        results = {kind: pooled(figures) for kind, figures in rounds.items()}
        results["gitstate-no-maintenance"] = run("gitstate-no-maintenance", root, args.steps)
        costs = file_system_costs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for kind in ("sqlite", "gitstate"):
        if results[kind]["messages"] != args.steps + 1:
            raise SystemExit(f"{kind}: the latest checkpoint holds {results[kind]['messages']} messages, "
                             f"expected {args.steps + 1}")
    out = table(results, args.steps, args.rounds, costs)
    print(out)
    if args.markdown:
        Path(args.markdown).write_text(out)
    if args.json:
        Path(args.json).write_text(json.dumps({**results, "rounds": rounds, "file_system": costs}, indent=2))


if __name__ == "__main__":
    main()
