"""gitstate benchmark: seeded workloads against the seed's files, the floor, naive dulwich, git gc.

    python bench/run.py            # full sizes (S, L, W, M, H, A, G); ~15 minutes on 2 cores
    python bench/run.py --quick    # 1/10 of the sizes: a smoke test
    python bench/run.py --only S,L --markdown out.md
    python bench/run.py --only G   # gc, reclaim memory: synthetic 30k / 300k / 3M objects; heads()

Every anchor runs in the same invocation on the same states: each state is
saved by gitstate, by the seed's ``save_state``, by the floor (canonical
encoding, one SHA-1, one write to a new file) and by naive dulwich (S, L, W,
M), one after the other in one loop of a child process (as an agent saves
between pieces of work), in every order in turn, so that every ratio compares
saves made under the same conditions: each saver runs as often after each other
one (a save pays for the caches the one before it evicted, and for collecting
its garbage). gitstate
runs with default settings (automatic maintenance on); bytes on disk are
measured after that process has exited, i.e. after the automatic
maintenance, with no manual step. What a workload wrote stays until the end
of the run, and every save loop runs before anything else is measured (git gc
on a copy, gitstate's gc, loads): on ext4 without a journal, creating a file
within a minute or more of many deletions costs up to ~0.5 ms (the inode
allocator passes over recently freed inodes), which would fall on the save
loop that runs next.
Prints a table of medians and ratios; ``--markdown`` also writes it to a
file, ``--json`` the raw figures.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
from dulwich.objects import Blob, Commit, Tree  # noqa: E402
from dulwich.repo import Repo  # noqa: E402

from bench.synthetic import build as build_synthetic  # noqa: E402
from bench.workloads import WORKLOADS, Text  # noqa: E402
from gitstate import AgentState, StateRepository  # noqa: E402

QUICK_SCALE = 10
SEED_TARGETS = {"S": 1.0, "L": 0.4, "M": 0.4}  # save p50 / the seed's save_state, at most
FLOOR_TARGETS = {"L": 1.5, "M": 1.5}  # save p50 / the floor (encode, SHA-1, one write), at most
GC_SIZES = (100, 1000, 10_000)  # G: agents x 100 checkpoints x 3 objects = 30,000 to 3,000,000
HEADS_AGENTS = 100_000  # G: heads() on that many synthetic agents (one checkpoint each)
LOADED = ("S", "L", "W", "M")  # workloads whose newest and oldest checkpoints are loaded
NO_NAIVE = ("H", "A")  # workloads without the naive dulwich anchor (too slow at their size)
CANONICAL = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
LOAD_REPEATS = 31


# -- measuring helpers ----------------------------------------------------------------------

def file_bytes(path: str) -> int:
    """Sum of the sizes of the regular files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def median_times(fns: dict[str, Callable[[], Any]], repeats: int = LOAD_REPEATS) -> dict[str, float]:
    """The median time of each function, called ``repeats`` times in turn (each round calls
    every one once, starting one further along), so that a spell of a shared machine falls
    on gitstate's loads and the seed's alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    calls = list(fns.items())
    for round_ in range(repeats):
        for name, fn in calls[round_ % len(calls):] + calls[:round_ % len(calls)]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def median_time(fn: Callable[[], Any], repeats: int = LOAD_REPEATS) -> float:
    return median_times({"": fn}, repeats)[""]


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident memory, in MB.

    Read from /proc: ``getrusage``'s ``ru_maxrss`` survives ``exec`` and would
    report the parent's peak in a child process.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# -- anchors ----------------------------------------------------------------------------------

def seed_save(folder: Path, state: AgentState, name: str) -> str:
    """The seed's ``save_state``: an envelope dumped with ``json.dump(indent=2)``."""
    path = folder / f"{state.agent_id}_{name}.json"
    envelope = {"version": "1.0", "serialized_at": datetime.now(timezone.utc).isoformat(),
                "state": state.model_dump()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(envelope, f, ensure_ascii=False, indent=2)
    return str(path)


def floor_save(folder: Path, state: AgentState, name: str) -> None:
    """What a save cannot go below: the canonical JSON (gitstate's format, which orjson
    writes as is for a state without floats), one SHA-1 of it, one write to a new file."""
    data = orjson.dumps(state.model_dump(mode="json"), option=CANONICAL)
    hashlib.sha1(data).digest()
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def seed_load(path: str) -> AgentState:
    """The seed's ``load_state``."""
    with open(path, "r", encoding="utf-8") as f:
        data = json.load(f)
    return AgentState(**data.get("state", data))


class NaiveDulwich:
    """A commit per checkpoint with dulwich's defaults: blob + tree + commit + ref."""

    def __init__(self, path: str):
        self.repo = Repo.init_bare(path, mkdir=True)

    def save(self, state: AgentState) -> None:
        text = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        blob = Blob.from_string(text.encode())
        tree = Tree()
        tree.add(b"state.json", 0o100644, blob.id)
        ref = f"refs/heads/agents/{state.agent_id}".encode()
        old = self._read(ref)
        commit = Commit()
        commit.tree, commit.parents = tree.id, [old] if old else []
        commit.author = commit.committer = f"{state.agent_id} <{state.agent_id}@bench>".encode()
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = f"iteration {state.iteration}\n".encode()
        for obj in (blob, tree, commit):
            self.repo.object_store.add_object(obj)
        if old is None:
            self.repo.refs.add_if_new(ref, commit.id)
        else:
            self.repo.refs.set_if_equals(ref, old, commit.id)

    def _read(self, ref: bytes) -> Optional[bytes]:
        try:
            return self.repo.refs[ref]
        except KeyError:
            return None


# -- gitstate in child processes --------------------------------------------------------------

def child_save(key: str, root: str, scale: int, mode: str) -> dict[str, Any]:
    """The workload's save loop (in this, a child, process): each state saved by gitstate
    into ``<root>/<key>.git``, by the seed into ``<key>-seed``, by the floor into
    ``<key>-floor`` and by naive dulwich into ``<key>-naive.git``, in every order in turn."""
    folder = Path(root)
    repo = StateRepository.init(folder / f"{key}.git")
    if mode != "default":
        repo.configure_maintenance(background=mode == "background")
    seed_dir, floor_dir = folder / f"{key}-seed", folder / f"{key}-floor"
    seed_dir.mkdir()
    floor_dir.mkdir()
    naive = None if key in NO_NAIVE else NaiveDulwich(str(folder / f"{key}-naive.git"))
    times: dict[str, list[float]] = {"gitstate": [], "seed": [], "floor": []}
    orders = list(itertools.permutations(range(4 if naive is not None else 3)))
    seed_paths: dict[str, list[str]] = {}
    first: set[str] = set()
    for i, (agent_id, state) in enumerate(WORKLOADS[key].make(Text(), scale)):
        name = "first" if agent_id not in first and key in LOADED else None  # to load the oldest
        first.add(agent_id)
        savers: list[tuple[str, Callable[[], Any]]] = [
            ("gitstate", lambda: repo.save(state, name=name)),
            ("seed", lambda: seed_paths.setdefault(agent_id, []).append(
                seed_save(seed_dir, state, f"{i:06d}"))),
            ("floor", lambda: floor_save(floor_dir, state, f"{i:06d}"))]
        if naive is not None:
            savers.append(("naive", lambda: naive.save(state)))
        for which, save in (savers[k] for k in orders[i % len(orders)]):
            start = time.perf_counter()
            save()
            times.setdefault(which, []).append(time.perf_counter() - start)
    largest = len(json.dumps(state.model_dump(mode="json"), indent=2))  # states only grow
    repo.wait_for_maintenance()
    return {"times": times, "rss_mb": rss_mb(), "largest": largest, "seed_paths": seed_paths}


def child_gc(path: str) -> dict[str, Any]:
    repo = StateRepository.open(path)
    before = rss_mb("VmRSS")
    start = time.perf_counter()
    result = repo.gc(prune=True, grace_seconds=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_mb": rss_mb(), "rss_growth_mb": rss_mb() - before,
            "bytes_after": file_bytes(path), "packed": result.packed_objects}


def file_system_costs(root: Path, count: int = 200) -> dict[str, float]:
    """Median cost (ms) here of what a save does per object and per ref: create a new file
    (a temporary written and renamed into place, as a loose object or a small pack is) and
    replace an existing one (a ``.lock`` created and renamed over the ref)."""
    folder = root / "fs"
    folder.mkdir()  # (left for the caller to remove: see "File creation" in docs/performance.md)
    creates, replaces = [], []
    for i in range(count):
        start = time.perf_counter()
        fd = os.open(folder / f"tmp{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.write(fd, b"x" * 1024)
        os.close(fd)
        os.replace(folder / f"tmp{i}", folder / f"object{i}")
        creates.append(time.perf_counter() - start)
        start = time.perf_counter()
        fd = os.open(folder / "ref.lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"%040d\n" % i)
        os.close(fd)
        os.replace(folder / "ref.lock", folder / "ref")
        replaces.append(time.perf_counter() - start)
    return {"create_ms": statistics.median(creates) * 1000, "replace_ms": statistics.median(replaces) * 1000}


def in_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- one workload -----------------------------------------------------------------------------

def save_workload(key: str, scale: int, root: Path, mode: str) -> dict[str, Any]:
    """The save loop of workload ``key`` (in a child process), timed."""
    os.sync()  # each save loop starts with no dirty data of earlier runs being written back
    started = time.perf_counter()
    saved = in_child("save", key, str(root), str(scale), mode)
    return {**saved, "run_s": time.perf_counter() - started}


def run_workload(key: str, root: Path, saved: dict[str, Any]) -> dict[str, Any]:
    """Everything measured of workload ``key`` after its save loop ``saved``."""
    work = WORKLOADS[key]
    out: dict[str, Any] = {"key": key, "title": work.title}
    repo_path, seed_dir = str(root / f"{key}.git"), root / f"{key}-seed"
    times, seed_paths, run_s = saved["times"], saved["seed_paths"], saved["run_s"]
    out["checkpoints"] = len(times["gitstate"])
    for which, folder in (("seed", seed_dir), ("floor", root / f"{key}-floor"),
                          ("naive", root / f"{key}-naive.git")):
        if which in times:
            out[which] = {"p50": statistics.median(times[which]), "p95": pct(times[which], 0.95),
                          "bytes": file_bytes(str(folder))}
    out["gitstate"] = {"p50": statistics.median(times["gitstate"]), "p95": pct(times["gitstate"], 0.95),
                       "run_s": run_s, "bytes": file_bytes(repo_path),
                       "save_rss_mb": saved["rss_mb"], "largest": saved["largest"]}

    copy = str(root / f"{key}-gc.git")
    shutil.copytree(repo_path, copy)
    start = time.perf_counter()
    subprocess.run(["git", "--git-dir", copy, "gc", "--aggressive", "--prune=now", "-q"], check=True)
    out["git_gc"] = {"seconds": time.perf_counter() - start, "bytes": file_bytes(copy)}

    repo = StateRepository.open(repo_path)
    agent = next(iter(seed_paths))
    if key in LOADED:
        out["load"] = median_times({
            "newest": lambda: repo.load(agent),
            "oldest": lambda: repo.load(agent, "first"),
            # a new repository object each time: nothing read yet, packs not yet mapped
            "newest_first": lambda: StateRepository(repo_path).load(agent),
            "oldest_first": lambda: StateRepository(repo_path).load(agent, "first"),
            "seed_newest": lambda: seed_load(seed_paths[agent][-1]),
            "seed_oldest": lambda: seed_load(seed_paths[agent][0]),
        })
    if key == "H":
        out["log20"] = median_time(lambda: repo.log(agent, limit=20))
        out["log_full"] = median_time(lambda: repo.log(agent), repeats=3)
    if key == "A":
        out["agents"] = median_time(lambda: StateRepository(repo_path).agents(), repeats=3)
        out["heads"] = median_time(lambda: StateRepository(repo_path).heads(), repeats=3)
        out["agents_again"] = median_time(repo.agents, repeats=3)
    out["gc"] = in_child("gc", repo_path)
    check = repo.verify()
    out["verify_ok"] = check.ok
    return out


def run_gc_memory(scale: int, root: Path) -> dict[str, Any]:
    """G: gc's memory on synthetic histories 10x apart (the slope between the two largest is
    bytes per object), and heads() on many synthetic agents."""
    out: dict[str, Any] = {"key": "G", "title": "synthetic histories, 100 checkpoints per agent",
                           "runs": []}
    for agents in GC_SIZES:
        agents = max(1, agents // scale)
        path = str(root / f"G-{agents}.git")
        start = time.perf_counter()
        objects, largest = build_synthetic(path, agents, 100)
        build_s = time.perf_counter() - start
        gc = in_child("gc", path)
        reclaim = in_child("reclaim", path)
        out["runs"].append({"objects": objects, "largest": largest, "build_s": build_s, **gc,
                            "reclaim": reclaim})
        shutil.rmtree(path)
    middle, large = out["runs"][-2:]
    out["per_object"] = ((large["rss_growth_mb"] - middle["rss_growth_mb"]) * 2**20
                         / (large["objects"] - middle["objects"]))
    out["reclaim_per_object"] = ((large["reclaim"]["rss_growth_mb"] - middle["reclaim"]["rss_growth_mb"])
                                 * 2**20 / (large["objects"] - middle["objects"]))
    out["checkpoints"] = large["objects"] // 3
    out["heads_agents"] = agents = max(1, HEADS_AGENTS // scale)
    path = str(root / f"G-heads-{agents}.git")
    build_synthetic(path, agents, 1)
    out["heads"] = in_child("heads", path)["seconds"]
    shutil.rmtree(path)
    return out


def child_reclaim(path: str) -> dict[str, Any]:
    """Every other agent deleted, then ``reclaim`` (its packs rewritten without what they
    held): its peak memory counted from after the deletes."""
    repo = StateRepository.open(path)
    for agent in sorted(repo.heads())[::2]:
        repo.delete_agent(agent)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the current resident set
    before = rss_mb("VmRSS")
    start = time.perf_counter()
    result = repo.reclaim(grace=timedelta(0))
    return {"seconds": time.perf_counter() - start, "rss_growth_mb": rss_mb() - before,
            "objects": result.objects}


def child_heads(path: str) -> dict[str, Any]:
    """heads() in a fresh process (nothing read yet), as the command line runs it."""
    start = time.perf_counter()
    StateRepository.open(path).heads()
    return {"seconds": time.perf_counter() - start}


# -- the table --------------------------------------------------------------------------------

def fmt_time(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """(workload, figure, gitstate, anchor, ratio, target, met) for every figure."""
    table: list[tuple[str, ...]] = []

    def add(key: str, figure: str, ours: str, anchor: str = "", ratio: Optional[float] = None,
            target: str = "", ok: Optional[bool] = None) -> None:
        table.append((key, figure, ours, anchor, "" if ratio is None else f"{ratio:.3g}",
                      target, "" if ok is None else ("yes" if ok else "NO")))

    for r in results:
        if r["key"] == "G":
            gc_memory_rows(r, add)
            continue
        k, g, seed = r["key"], r["gitstate"], r["seed"]
        ratio = g["p50"] / seed["p50"]
        limit = SEED_TARGETS.get(k)
        add(k, "save p50 vs seed file", fmt_time(g["p50"]), fmt_time(seed["p50"]), ratio,
            f"<= {limit:g}" if limit else "", None if limit is None else ratio <= limit)
        ratio = g["p50"] / r["floor"]["p50"]
        limit = FLOOR_TARGETS.get(k)
        add(k, "save p50 vs floor", fmt_time(g["p50"]), fmt_time(r["floor"]["p50"]), ratio,
            f"<= {limit:g}" if limit else "", None if limit is None else ratio <= limit)
        if "naive" in r:
            ratio = g["p50"] / r["naive"]["p50"]
            add(k, "save p50 vs naive dulwich", fmt_time(g["p50"]), fmt_time(r["naive"]["p50"]),
                ratio, "<= 0.7" if k == "W" else "", ratio <= 0.7 if k == "W" else None)
        add(k, "save p95 (seed / floor / naive)", fmt_time(g["p95"]),
            f"{fmt_time(seed['p95'])} / {fmt_time(r['floor']['p95'])}"
            + (f" / {fmt_time(r['naive']['p95'])}" if "naive" in r else ""))
        sized = k in ("S", "L")
        ratio = g["bytes"] / r["git_gc"]["bytes"]
        add(k, "bytes vs git gc --aggressive", fmt_bytes(g["bytes"]), fmt_bytes(r["git_gc"]["bytes"]),
            ratio, "<= 1.5" if sized else "", ratio <= 1.5 if sized else None)
        ratio = seed["bytes"] / g["bytes"]
        add(k, "seed folder / gitstate bytes", fmt_bytes(g["bytes"]), fmt_bytes(seed["bytes"]),
            ratio, ">= 50" if sized else "", ratio >= 50 if sized else None)
        if "naive" in r:
            add(k, "bytes vs naive dulwich", fmt_bytes(g["bytes"]), fmt_bytes(r["naive"]["bytes"]),
                g["bytes"] / r["naive"]["bytes"])
        if "load" in r:
            load = r["load"]
            ratio = load["newest"] / load["seed_newest"]
            add(k, "load newest vs seed file", fmt_time(load["newest"]), fmt_time(load["seed_newest"]),
                ratio, "<= 1.2", ratio <= 1.2)
            ratio = load["oldest"] / load["seed_oldest"]
            add(k, "load oldest vs seed file", fmt_time(load["oldest"]), fmt_time(load["seed_oldest"]),
                ratio, "<= 3", ratio <= 3)
            add(k, "first load of newest (new repository object)", fmt_time(load["newest_first"]),
                fmt_time(load["seed_newest"]), load["newest_first"] / load["seed_newest"])
            add(k, "first load of oldest (new repository object)", fmt_time(load["oldest_first"]),
                fmt_time(load["seed_oldest"]), load["oldest_first"] / load["seed_oldest"])
        if "log20" in r:
            add(k, "log --limit 20", fmt_time(r["log20"]), target="<= 20 ms", ok=r["log20"] <= 0.02)
            add(k, "full log", fmt_time(r["log_full"]), target="<= 1 s", ok=r["log_full"] <= 1)
        if "agents" in r:
            add(k, "agents() (first call, new repository object)", fmt_time(r["agents"]),
                target="<= 0.5 s", ok=r["agents"] <= 0.5)
            add(k, "heads(): ids and heads (new repository object)", fmt_time(r["heads"]))
            add(k, "agents() again (objects cached)", fmt_time(r["agents_again"]))
        gc = r["gc"]
        add(k, "gc (full repack + prune) time", fmt_time(gc["seconds"]),
            fmt_time(r["git_gc"]["seconds"]) + " (git gc --aggressive)",
            gc["seconds"] / r["git_gc"]["seconds"])
        limit = 2 * g["largest"] / 2**20 + 100
        add(k, "gc peak memory (RSS growth)", f"{gc['rss_growth_mb']:.1f} MB",
            f"process peak {gc['rss_mb']:.0f} MB", None, f"<= {limit:.1f} MB",
            gc["rss_growth_mb"] <= limit)
        add(k, "save loop peak memory (process RSS)", f"{g['save_rss_mb']:.0f} MB")
        add(k, "verify() after the run", "ok" if r["verify_ok"] else "PROBLEMS")
    return table


def gc_memory_rows(r: dict[str, Any], add: Callable[..., None]) -> None:
    for run in r["runs"]:
        limit = 2 * run["largest"] / 2**20 + 100
        add("G", f"gc peak memory, {run['objects']:,} objects (RSS growth)",
            f"{run['rss_growth_mb']:.1f} MB", f"process peak {run['rss_mb']:.0f} MB", None,
            f"<= {limit:.1f} MB", run["rss_growth_mb"] <= limit)
        add("G", f"gc time, {run['objects']:,} objects", fmt_time(run["seconds"]),
            f"built in {fmt_time(run['build_s'])}")
        reclaim = run["reclaim"]
        add("G", f"reclaim peak memory, half of {run['objects']:,} objects deleted (RSS growth)",
            f"{reclaim['rss_growth_mb']:.1f} MB", f"in {fmt_time(reclaim['seconds'])}", None,
            f"<= {limit:.1f} MB", reclaim["rss_growth_mb"] <= limit)
    middle, large = r["runs"][-2:]
    add("G", f"gc memory per object (slope, {middle['objects']:,} to {large['objects']:,})",
        f"{r['per_object']:.0f} B", target="< 20 B", ok=r["per_object"] < 20)
    add("G", f"reclaim memory per object (slope, {middle['objects']:,} to {large['objects']:,})",
        f"{r['reclaim_per_object']:.0f} B", target="< 20 B", ok=r["reclaim_per_object"] < 20)
    add("G", f"heads() on {r['heads_agents']:,} agents (new process)", fmt_time(r["heads"]),
        target="<= 1 s", ok=r["heads"] <= 1)


def markdown(results: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| workload | figure | gitstate | anchor | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines.append("")
    for r in results:
        if r["key"] == "G":
            lines.append(f"- G: {r['title']}, {r['checkpoints']} checkpoints in the larger one")
            continue
        lines.append(f"- {r['key']}: {r['title']}, {r['checkpoints']} checkpoints, largest state "
                     f"{fmt_bytes(r['gitstate']['largest'])}, gitstate run {r['gitstate']['run_s']:.1f} s")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the sizes (smoke test)")
    parser.add_argument("--scale", type=int, help="divide the number of checkpoints by this")
    parser.add_argument("--only", default="S,L,W,M,H,A,G", help="comma-separated workloads")
    parser.add_argument("--maintenance", choices=("default", "background", "inline"),
                        default="default", help="where automatic maintenance runs during saves")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        figures = (child_save(rest[0], rest[1], int(rest[2]), rest[3]) if kind == "save" else
                   child_heads(rest[0]) if kind == "heads" else
                   child_reclaim(rest[0]) if kind == "reclaim" else child_gc(rest[0]))
        print(json.dumps(figures))
        return 0
    scale = args.scale or (QUICK_SCALE if args.quick else 1)
    keys = [k.strip().upper() for k in args.only.split(",") if k.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="gitstate-bench-") as tmp:
        costs = file_system_costs(Path(tmp))  # what a new file costs here, before any save
        saved = {}
        for key in keys:  # every save loop first: what is measured after deletes files
            if key != "G":
                print(f"saving {key} ...", file=sys.stderr, flush=True)
                saved[key] = save_workload(key, scale, Path(tmp), args.maintenance)
        for key in keys:
            print(f"measuring {key} ...", file=sys.stderr, flush=True)
            results.append(run_gc_memory(scale, Path(tmp)) if key == "G" else
                           run_workload(key, Path(tmp), saved[key]))
    header = (f"gitstate benchmark ({'full' if scale == 1 else f'1/{scale} size'}, maintenance "
              f"{args.maintenance}; python "
              f"{sys.version.split()[0]}, {os.cpu_count()} cpus; medians)")
    table = markdown(results, header) + (
        f"- file system at the start (median of 200): a new file {costs['create_ms']:.3f} ms, "
        f"replacing a file by rename (a ref update) {costs['replace_ms']:.3f} ms\n")
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "file_system": costs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
