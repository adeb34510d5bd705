"""The benchmark runs end to end at a tiny size and prints every figure and target."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench  # CI runs it after the README's command (.ci/run)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {
    ("S", "save p50 vs seed file"), ("L", "save p50 vs seed file"), ("M", "save p50 vs seed file"),
    ("L", "save p50 vs floor"), ("M", "save p50 vs floor"), ("W", "save p50 vs naive dulwich"),
    ("S", "bytes vs git gc --aggressive"), ("L", "bytes vs git gc --aggressive"),
    ("S", "seed folder / gitstate bytes"), ("L", "seed folder / gitstate bytes"),
    ("S", "load newest vs seed file"), ("L", "load oldest vs seed file"),
    ("H", "log --limit 20"), ("H", "full log"),
    ("A", "agents() (first call, new repository object)"),
    ("L", "gc peak memory (RSS growth)"),
}
G_TARGETS = ("gc memory per object (slope", "reclaim memory per object (slope", "heads() on ",
             "reclaim peak memory, half of ")  # figures named with their sizes


def test_bench_prints_the_table(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--scale", "100",
                          "--json", str(out_json)], capture_output=True, text=True, check=True)
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    assert [cell.strip() for cell in header] == ["workload", "figure", "gitstate", "anchor",
                                                  "ratio", "target", "met"]
    cells = {(r[0].strip(), r[1].strip()): [c.strip() for c in r] for r in body}
    g_rows = [name for key, name in cells if key == "G" and name.startswith(G_TARGETS)]
    assert len(g_rows) == 6, g_rows
    for key in [*TARGETS, *(("G", name) for name in g_rows)]:
        row = cells[key]
        assert row[5] and row[6] in ("yes", "NO"), row  # a target and its verdict
    assert cells[("A", "heads(): ids and heads (new repository object)")][2].endswith("ms")
    assert {k for k, _ in cells} == {"S", "L", "W", "M", "H", "A", "G"}
    assert "- file system at the start (median of 200): a new file " in run.stdout
    saved = json.loads(out_json.read_text())
    assert saved["file_system"]["create_ms"] > 0
    figures = saved["results"]
    assert [f["key"] for f in figures] == ["S", "L", "W", "M", "H", "A", "G"]
    assert all(f["floor"]["p50"] > 0 for f in figures[:-1])  # measured in the same loop
    assert all(f["verify_ok"] for f in figures[:-1])
    assert [run["packed"] for run in figures[-1]["runs"]] == [300, 3000, 30000]  # G: every object repacked
    # reclaim deleted the objects of every other agent: 1 agent of 1, then 5 of 10, 50 of 100
    assert [run["reclaim"]["objects"] for run in figures[-1]["runs"]] == [300, 1500, 15000]


def test_langgraph_bench_prints_the_table(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "langgraph_loop.py"), "--steps", "6",
                          "--rounds", "2", "--json", str(out_json)],
                         capture_output=True, text=True, check=True)
    rows = {r[1].strip(): [c.strip() for c in r[1:-1]]
            for r in (line.split("|") for line in run.stdout.splitlines() if line.startswith("| "))}
    for figure in ("bytes on disk after the writer exited", "median time per super-step",
                   "list of the whole thread (first call)", "get_tuple of the latest (median of 15)"):
        assert rows[figure][4] and rows[figure][5] in ("yes", "NO"), rows[figure]  # target, verdict
    assert "Median step of each round (ms): GitstateSaver " in run.stdout
    assert "Median step of steps 1-1, 2-2, 3-4, 5-5, 6-6 (ms, all rounds): GitstateSaver " in run.stdout
    saved = json.loads(out_json.read_text())
    assert [len(saved["rounds"][kind]) for kind in ("gitstate", "sqlite")] == [2, 2]
    assert all(len(r["times"]) == 6 for kind in ("gitstate", "sqlite") for r in saved["rounds"][kind])
    for kind in ("gitstate", "sqlite"):  # each fifth's median, over both rounds' steps
        steps = [r["times"] for r in saved["rounds"][kind]]
        assert saved[kind]["part_step_ms"][2] == statistics.median(steps[0][2:4] + steps[1][2:4]) * 1000
    assert saved["gitstate"]["messages"] == saved["sqlite"]["messages"] == 7  # and one per step
    assert saved["gitstate"]["checkpoints"] == saved["sqlite"]["checkpoints"] == 8
