"""``gitstate gc`` and ``gitstate verify`` (in-process; progress on a terminal through the executable)."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pytest

from gitstate import StateRepository

from cli_helpers import FIXTURE, Gitstate, assert_gitstate_error, on_terminal
from conftest import fsck, git


def imported(gitstate: Gitstate) -> Path:
    """The default repository, holding the seed fixture's checkpoints (all loose).

    Automatic maintenance is off, or the import could pack them when it exits.
    """
    path = gitstate.cwd / ".gitstate"
    StateRepository.init(path).configure_maintenance(auto_objects=0)
    result = gitstate("import", str(FIXTURE))
    assert result.code == 0, result.err
    assert count_objects(path)["count"] > 0
    return path


def count_objects(path: Path) -> dict[str, int]:
    """``git count-objects -v`` as numbers (count = loose objects, in-pack, packs, ...)."""
    return {key: int(value) for key, value in
            (line.split(": ") for line in git(path, "count-objects", "-v").splitlines())}


# -- gc ---------------------------------------------------------------------------------

def test_gc_packs_every_loose_object_and_stays_quiet_in_a_pipe(gitstate):
    path = imported(gitstate)
    loose = count_objects(path)["count"]
    commits = git(path, "rev-list", "--count", "--all")
    result = gitstate("gc", "--json")
    assert result.code == 0 and result.err == ""  # stderr is no terminal: no progress bar
    done = result.json()
    assert done["skipped"] is False
    assert done["packed_objects"] == done["loose_removed"] == loose
    assert done["bytes_after"] < done["bytes_before"]
    counts = count_objects(path)
    assert counts["count"] == 0 and counts["in-pack"] == loose and counts["packs"] == 1
    fsck(path)
    assert git(path, "rev-list", "--count", "--all") == commits

    again = gitstate("gc")
    assert again.code == 0 and again.err == ""
    assert again.out.startswith("Packed 0 objects, merged 0 packs, pruned 0 objects; ")


def test_gc_prune_deletes_only_old_unreachable_objects(gitstate):
    path = imported(gitstate)
    reachable = count_objects(path)["count"]
    stray = subprocess.run(["git", "--git-dir", str(path), "hash-object", "-w", "--stdin"],
                           input=b'{"nobody": "points here"}', capture_output=True, check=True).stdout.strip()

    young = gitstate("gc", "--prune", "--json")  # within the grace period: kept, still loose
    assert young.code == 0 and young.err == ""
    assert young.json()["pruned_objects"] == 0 and young.json()["packed_objects"] == reachable
    assert count_objects(path)["count"] == 1
    git(path, "cat-file", "-e", stray.decode())

    pruned = gitstate("gc", "--prune", "--grace", "0", "--json")
    assert pruned.code == 0 and pruned.err == ""
    assert pruned.json()["pruned_objects"] == 1
    counts = count_objects(path)
    assert counts["count"] == 0 and counts["in-pack"] == reachable and counts["packs"] == 1
    assert subprocess.run(["git", "--git-dir", str(path), "cat-file", "-e", stray]).returncode != 0
    fsck(path)
    check = gitstate("verify", "--json")
    assert check.code == 0 and check.json()["ok"] is True and check.json()["objects"] == reachable

    human = gitstate("gc", "--prune", "--grace", "0")
    assert human.code == 0 and human.out.startswith(f"Packed {reachable} objects, merged 1 pack, pruned 0 objects; ")


def test_gc_draws_a_progress_bar_on_a_terminal(tmp_path):
    repo = StateRepository.init(tmp_path / "repo.git")
    repo.configure_maintenance(auto_objects=0)
    repo.import_seed(FIXTURE)
    loose = count_objects(Path(repo.path))["count"]
    code, out, drawn = on_terminal("--repo", repo.path, "gc", env=dict(os.environ))
    assert code == 0 and out.startswith(f"Packed {loose} objects".encode())
    assert b"Packing" in drawn and b"100%" in drawn and b"Packing" not in out


# -- verify -----------------------------------------------------------------------------

def test_verify_a_sound_repository(gitstate):
    path = imported(gitstate)
    agents = len(git(path, "for-each-ref", "refs/heads/agents/").splitlines())
    checkpoints = int(git(path, "rev-list", "--count", "--all"))
    objects = count_objects(path)["count"]
    human = gitstate("verify")
    assert human.code == 0 and human.err == ""
    assert human.out == f"Checked {agents} agents, {checkpoints} checkpoints, {objects} objects: no problems\n"
    as_json = gitstate("verify", "--json")
    assert as_json.code == 0 and as_json.err == ""
    assert as_json.json() == {"ok": True, "problems": [], "agents": agents, "checkpoints": checkpoints,
                              "objects": objects}


def dangling_ref(path: Path) -> list[tuple[str, str]]:
    (path / "refs/heads/agents/agent_e81d2c07").write_text("0" * 40 + "\n")
    return [("ref", "refs/heads/agents/agent_e81d2c07")]


def damaged_state_blob(path: Path) -> list[tuple[str, str]]:
    """Rewrite the loose object of an agent's latest state.json with content that is not JSON."""
    commit = git(path, "rev-parse", "agents/agent_7c1e9a42").strip()
    blob = git(path, "rev-parse", "agents/agent_7c1e9a42:state.json").strip()
    loose = path / "objects" / blob[:2] / blob[2:]
    raw = zlib.decompress(loose.read_bytes()).replace(b'"iteration": ', b'"iteration"! ', 1)
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(raw))
    return [("object", blob), ("state", f"agent_7c1e9a42@{commit[:12]}")]


@pytest.mark.parametrize("damage", [dangling_ref, damaged_state_blob])
def test_verify_names_each_problem_and_exits_1(gitstate, damage):
    expected = damage(imported(gitstate))
    human = gitstate("verify")
    assert human.code == 1 and human.exception is None
    lines = human.err.splitlines()
    assert [tuple(line.split(" ", 2)[:2]) for line in lines] == [(k, s + ":") for k, s in expected]
    assert "Traceback" not in human.err
    assert human.out.endswith(f": {len(lines)} problem{'s' * (len(lines) > 1)}\n")

    as_json = gitstate("verify", "--json")
    assert as_json.code == 1 and as_json.err == ""
    report = as_json.json()
    assert report["ok"] is False
    assert [(p["kind"], p["subject"]) for p in report["problems"]] == expected
    assert all(p["message"] and p["message"] in line for p, line in zip(report["problems"], lines))


# -- errors -----------------------------------------------------------------------------

def test_gc_and_verify_need_a_repository(gitstate):
    for command in ("gc", "verify"):
        assert_gitstate_error(gitstate(command), "no gitstate repository", "gitstate init")
    assert not (gitstate.cwd / ".gitstate").exists()


@pytest.mark.parametrize("args", [["gc", "--grace", "-1"], ["gc", "--grace", "soon"], ["gc", "--frobnicate"],
                                  ["gc", "--grace", "60"], ["verify", "extra"], ["verify", "--prune"]])
def test_usage_errors_exit_2(gitstate, args):
    result = gitstate(*args)
    assert result.code == 2 and result.exception is None
    assert result.err.startswith("Usage: gitstate ") and "Traceback" not in result.err
