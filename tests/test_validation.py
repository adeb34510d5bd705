"""Input validation matching git: checkpoint times, ids and names, nesting depth, Enum values,
command-line input, and a closed output pipe. Bad input gives a typed error before anything
is written (the repository stays byte for byte as it was); what gitstate writes, git accepts."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitstate import (
    AgentState,
    CorruptObjectError,
    Duration,
    EncodingError,
    InvalidAgentIdError,
    InvalidArgumentError,
    InvalidNameError,
    RetentionPolicy,
    StateRepository,
    codec,
    plan,
)
from gitstate.codec import MAX_DEPTH
from gitstate.ids import new_checkpoint_id, validate_agent_id, validate_name
from gitstate.message import build as build_message
from gitstate.seed_import import IMPORTED, REJECTED

from cli_helpers import EXECUTABLE, assert_gitstate_error, state_json
from conftest import examples, fsck, git, snapshot

UTC = timezone.utc
EAST, WEST = timezone(timedelta(hours=5)), timezone(timedelta(hours=-5))


def plumb(repo: StateRepository, *args: str, input: bytes = b"") -> str:
    """Run git with ``input`` on stdin; its stripped stdout."""
    return subprocess.run(["git", "--git-dir", repo.path, *args], input=input, capture_output=True,
                          check=True).stdout.decode().strip()


def commit_state(repo: StateRepository, agent_id: str, state_json_bytes: bytes) -> str:
    """A checkpoint another tool wrote: ``state_json_bytes`` as state.json, committed with git
    plumbing on top of the agent's branch (or as its first commit); the branch file is written
    directly, as git refuses some of the names tests need."""
    blob = plumb(repo, "hash-object", "-w", "--stdin", input=state_json_bytes)
    tree = plumb(repo, "mktree", input=f"100644 blob {blob}\tstate.json\n".encode())
    branch = Path(repo.path, "refs", "heads", "agents", agent_id)
    parent = ["-p", branch.read_text().strip()] if branch.exists() else []
    message = (f"{agent_id} by another tool\n\nCheckpoint-Id: {new_checkpoint_id()}\n"
               f"Agent-Id: {agent_id}\nSchema-Version: 1\n")
    sha = plumb(repo, "commit-tree", tree, *parent, "-m", message)
    branch.parent.mkdir(parents=True, exist_ok=True)
    branch.write_text(sha + "\n")
    return sha


# -- checkpoint times: 1970-01-01 to 9999-12-31 UTC -------------------------------------------

@pytest.mark.parametrize("when", [
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),  # rounds to 0, yet is before 1970
    datetime(1970, 1, 1, 4, 59, 59, tzinfo=EAST),              # 1969 in UTC
    datetime(1, 1, 1, tzinfo=EAST),                            # UTC year 0
    datetime(9999, 12, 31, 23, tzinfo=WEST),                   # UTC year 10000
], ids=["1969", "half-second-before", "1969-in-utc", "utc-year-0", "utc-year-10000"])
def test_times_outside_1970_to_9999_utc_are_refused_before_any_write(repo, when):
    repo.save({"agent_id": "a"})
    before = snapshot(repo)
    with pytest.raises(InvalidArgumentError, match=r"1970-01-01\.\.9999-12-31") as info:
        repo.save({"agent_id": "a"}, time=when)
    assert when.isoformat() in str(info.value)
    assert snapshot(repo) == before
    assert len(repo.log("a")) == 1 and [a.agent_id for a in repo.agents()] == ["a"]


def test_the_first_and_last_accepted_seconds_are_what_git_reads(repo):
    first, last = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert repo.save({"agent_id": "a"}, time=first).created == first
    assert repo.save({"agent_id": "a"}, time=last.astimezone(WEST)).created == last
    assert git(repo, "log", "--format=%at", "agents/a").split() == ["253402300799", "0"]
    fsck(repo)


class Unusable(tzinfo):
    """A time zone whose offset datetime refuses (a day or more)."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=30)


def test_times_in_an_unusable_time_zone_are_argument_errors(repo):
    repo.save({"agent_id": "a"})
    odd = datetime(2025, 6, 3, tzinfo=Unusable())
    for call in (lambda: repo.save({"agent_id": "a"}, time=odd), lambda: repo.log("a", since=odd),
                 lambda: repo.log("a", before=odd)):
        with pytest.raises(InvalidArgumentError, match="unusable time zone"):
            call()


def test_cli_time_before_1970_is_an_error(gitstate):
    assert gitstate("save", input=state_json()).code == 0
    before = snapshot(StateRepository.open(gitstate.cwd / ".gitstate"))
    assert_gitstate_error(gitstate("save", "--time", "1969-07-20T20:17:40Z", input=state_json()),
                          "1969-07-20T20:17:40+00:00", "1970-01-01..9999-12-31")
    assert snapshot(StateRepository.open(gitstate.cwd / ".gitstate")) == before


def test_seed_files_with_times_git_refuses_are_rejected_and_the_import_goes_on(repo, tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    state = AgentState(agent_id="agent_1").model_dump()
    for name, at in [("early", "1969-12-31T23:59:59+00:00"), ("zero", "0001-01-01T00:00:00+05:00"),
                     ("good", "2025-06-03T14:02:11+00:00"), ("late", "9999-12-31T23:00:00-05:00")]:
        (folder / f"agent_1_{name}.json").write_text(
            json.dumps({"version": "1.0", "serialized_at": at, "state": state}))
    outcomes = {o.filename: o for o in repo.import_seed(folder)}
    assert {name: o.status for name, o in outcomes.items()} == {
        "agent_1_good.json": IMPORTED, "agent_1_early.json": REJECTED,
        "agent_1_zero.json": REJECTED, "agent_1_late.json": REJECTED}
    assert "'serialized_at' 1969-12-31T23:59:59+00:00 is outside" in outcomes["agent_1_early.json"].reason
    assert "0001-01-01T00:00:00+05:00" in outcomes["agent_1_zero.json"].reason
    assert [c.names for c in repo.log("agent_1")] == [("good",)]
    fsck(repo)


# -- agent ids, names and remote names: valid ref names -------------------------------------

def refs_git_refuses(path: Path, refs: list[str]) -> str:
    """Ask git (one process) whether each ref name is valid: '' if all are, else git's complaint.

    ``git update-ref --stdin`` checks every name with check-ref-format's rules before it
    verifies (here: that the ref does not exist); nothing is written.
    """
    commands = b"".join(b"verify " + ref.encode() + b"\0\0" for ref in refs)
    result = subprocess.run(["git", "--git-dir", str(path), "update-ref", "--stdin", "-z"],
                            input=commands, capture_output=True, check=False)
    return "" if result.returncode == 0 else result.stderr.decode()


def accepted(validate, candidates: list[str]) -> list[str]:
    kept = []
    for candidate in candidates:
        try:
            kept.append(validate(candidate))
        except (InvalidAgentIdError, InvalidNameError):
            pass
    return kept


def git_refs(ids: list[str], names: list[str]) -> list[str]:
    """The refs gitstate writes for these agents (as branches, and as remote names too) and names."""
    refs = {f"refs/heads/agents/{i}" for i in ids} | {f"refs/remotes/{i}/agents/{i}" for i in ids}
    refs |= {f"refs/tags/agents/{ids[k % len(ids)]}/{n}" for k, n in enumerate(names)} if ids else set()
    return sorted(refs)


# strings rich in what ref names trip over
REF_TOKENS = [".", "..", "-", "_", "/", "@", "@{", "{", " ", "lock", ".lock", "a", "Z", "9", "é",
              "~", "^", ":", "?", "*", "[", "\\", "\t", "\x7f", "a.", ".a"]
candidates = st.lists(st.sampled_from(REF_TOKENS), min_size=1, max_size=6).map("".join)


@pytest.fixture(scope="module")
def scratch_git(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("refs") / "scratch.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@settings(max_examples=examples(0.2), derandomize=True)
@given(st.lists(candidates, min_size=100, max_size=300))
def test_every_accepted_id_and_name_gives_refs_git_accepts(scratch_git, strings):
    ids, names = accepted(validate_agent_id, strings), accepted(validate_name, strings)
    assert refs_git_refuses(scratch_git, git_refs(ids, names)) == ""


EDGE_CASES = ["a", "A-b_c.d", "_", "9", "a.b.c", "x" * 128, "a.", "a-.", "a..b", ".a", "-a", "a.lock",
              "a.lock.", "lock", "a.locked", "a@b", "a@{1}", "@", "a b", "a/b", "a~1", "a^", "a:b",
              "a?", "a*", "a[", "a\\b", "a\tb", "a\x7fb", "é", "", "x" * 129]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_accepted_only_if_git_check_ref_format_accepts_them(text):
    refs = [f"refs/heads/agents/{text}", f"refs/tags/agents/a/{text}", f"refs/remotes/{text}/agents/a"]
    git_ok = all(subprocess.run(["git", "check-ref-format", ref], check=False).returncode == 0 for ref in refs)
    assert accepted(validate_agent_id, [text]) == accepted(validate_name, [text])
    if accepted(validate_agent_id, [text]):
        assert git_ok, text


@pytest.mark.parametrize("text", ["a.", "agent_1.", "x-.", "a.b."])
def test_ids_names_and_remote_names_ending_in_a_dot_are_refused(repo, tmp_path, text):
    repo.save({"agent_id": "a"})
    before = snapshot(repo)
    with pytest.raises(InvalidAgentIdError, match="must not end in '.'"):
        repo.save({"agent_id": text})
    with pytest.raises(InvalidNameError, match="must not end in '.'"):
        repo.save({"agent_id": "a"}, name=text)
    with pytest.raises(InvalidNameError, match="must not end in '.'"):
        repo.tag("a", text)
    with pytest.raises(InvalidAgentIdError, match="must not end in '.'"):
        repo.fork("a", "latest", text)
    with pytest.raises(InvalidArgumentError, match="must not end in '.'"):
        repo.remote_add(text, str(tmp_path / "elsewhere.git"))
    assert snapshot(repo) == before


def test_an_agent_an_older_gitstate_saved_under_an_id_ending_in_a_dot_can_be_forked_and_deleted(repo, tmp_path):
    commit_state(repo, "old.", codec.encode({"agent_id": "old.", "iteration": 1}))
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.remote_add("origin", str(remote))
    assert repo.load("old.", model=None)["agent_id"] == "old." and len(repo.log("old.")) == 1
    assert [a.agent_id for a in repo.agents()] == ["old."]
    assert any("must not end in '.'" in str(problem) for problem in repo.verify().problems)

    before = snapshot(repo)
    with pytest.raises(InvalidAgentIdError, match=r"fork it to a valid id \(gitstate fork old\. latest "
                                                  r"NEW_ID\), then delete it \(gitstate delete old\. --yes\)"):
        repo.save({"agent_id": "old."})
    with pytest.raises(InvalidAgentIdError, match="must not end in '.'"):
        repo.tag("old.", "named")
    with pytest.raises(InvalidAgentIdError, match="must not end in '.'"):
        repo.push("origin")  # before connecting: nothing reaches the remote
    assert snapshot(repo) == before
    assert git(remote, "for-each-ref") == ""

    forked = repo.fork("old.", "latest", "old")
    repo.delete_agent("old.")
    assert [a.agent_id for a in repo.agents()] == ["old"]
    assert repo.load("old", model=None) == {"agent_id": "old", "iteration": 1}
    assert repo.latest("old").commit == forked.commit
    git(repo, "gc", "--quiet")  # git no longer meets a ref name it refuses
    fsck(repo)


# -- nesting depth ----------------------------------------------------------------------------

def nested(levels: int, leaf: object = 1) -> object:
    """``leaf`` inside ``levels`` lists."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def deep_path(levels: int) -> str:
    """The path of the list ``levels`` deep under ``$.deep`` (the state itself is level 1)."""
    return "$.deep" + "[0]" * (levels - 2)


def test_states_nested_max_depth_levels_are_saved_shown_and_diffed(repo, gitstate):
    first = repo.save({"agent_id": "a", "deep": nested(MAX_DEPTH - 1)})
    second = repo.save({"agent_id": "a", "deep": nested(MAX_DEPTH - 1, 2)})
    assert repo.load("a", first.commit, model=None) == {"agent_id": "a", "deep": nested(MAX_DEPTH - 1)}
    assert repo.diff("a", first.commit).patch == [{"op": "replace", "path": "/deep" + "/0" * (MAX_DEPTH - 1),
                                                    "value": 2}]
    assert repo.verify().ok
    shown = gitstate("--repo", repo.path, "show", "a").out.encode()
    assert shown == codec.encode(repo.read_state(second.commit))
    fsck(repo)


@pytest.mark.parametrize("state", [
    {"agent_id": "a", "deep": nested(MAX_DEPTH)},
    {"agent_id": "a", "deep": nested(254)},         # orjson's own limit
    {"agent_id": "a", "deep": nested(100_000)},
    AgentState(agent_id="a", task_context={"deep": nested(MAX_DEPTH)}),
    AgentState(agent_id="a", task_context={"deep": nested(300)}),  # deeper than pydantic dumps
], ids=["max+1", "orjson-limit", "100000", "model", "model-300"])
def test_deeper_states_raise_encoding_error_before_any_write(repo, state):
    repo.save({"agent_id": "a"})
    before = snapshot(repo)
    with pytest.raises(EncodingError) as info:
        repo.save(state)
    assert snapshot(repo) == before
    if isinstance(state, dict):
        assert info.value.path == deep_path(MAX_DEPTH + 1)
        assert f"nesting deeper than {MAX_DEPTH} levels at {info.value.path}" in str(info.value)


def test_a_cyclic_value_is_an_encoding_error():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(EncodingError, match="nesting deeper"):
        codec.encode({"loop": cycle})


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 5000])
def test_a_deep_state_another_tool_wrote_gives_typed_errors(repo, gitstate, levels):
    good = repo.save({"agent_id": "a", "iteration": 1})
    deep = commit_state(repo, "a", f'{{"agent_id": "a", "deep": {"[" * levels}1{"]" * levels}}}'.encode())
    readable = levels <= 1024  # what orjson reads; deeper is not JSON gitstate can read
    expected = EncodingError if readable else CorruptObjectError
    if readable:
        assert repo.load("a", model=None)["agent_id"] == "a"
    else:
        with pytest.raises(CorruptObjectError):
            repo.load("a", model=None)
    before = snapshot(repo)
    with pytest.raises(expected):
        repo.fork("a", "latest", "b")
    with pytest.raises(expected):
        repo.diff("a", good.commit)
    for args in (["show", "a"], ["diff", "a", good.commit, "--format", "text"], ["fork", "a", "latest", "b"]):
        assert_gitstate_error(gitstate("--repo", repo.path, *args))
    assert snapshot(repo) == before
    assert [p.kind for p in repo.verify().problems] == ["state"]
    assert repo.rollback("a", good.commit).checkpoint.parent == deep  # copies good's objects: no decoding
    assert repo.load("a", model=None) == {"agent_id": "a", "iteration": 1}


# -- Enum values ------------------------------------------------------------------------------

class Score(float, Enum):
    MISSING = math.nan
    HUGE = math.inf
    ONE = 1.0


class Preset(Enum):
    DEFAULT = {"threshold": 1e16, "weights": (0.1, 2.0), "nested": {"limit": 1e-7}}
    BROKEN = {"threshold": math.nan}


@pytest.mark.parametrize(("value", "path"), [
    ({"scores": [Score.ONE, Score.MISSING]}, "$.scores[1]"),
    ({"scores": {"best": Score.HUGE}}, "$.scores.best"),
    ({"preset": Preset.BROKEN}, "$.preset.threshold"),
])
def test_enum_values_are_checked_like_any_value(repo, value, path):
    with pytest.raises(EncodingError) as info:
        codec.encode(value)
    assert info.value.path == path and "non-finite" in str(info.value)
    before = snapshot(repo)
    with pytest.raises(EncodingError):
        repo.save({"agent_id": "a", **value})
    assert snapshot(repo) == before


def test_enum_values_are_written_like_the_plain_values_they_hold():
    plain = {"preset": {"threshold": 1e16, "weights": [0.1, 2.0], "nested": {"limit": 1e-7}}, "one": 1.0}
    assert codec.encode({"preset": Preset.DEFAULT, "one": Score.ONE}) == codec.encode(plain)
    assert b"1e+16" in codec.encode(plain) and b"1e-07" in codec.encode(plain)


# -- command-line input -----------------------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    (["save", "-m", "summary \udcff"], ["message", "'summary \\udcff'", "not valid UTF-8"]),
    (["save", "--trailer", "Note=caf\udce9"], ["trailer 'Note' value", "not valid UTF-8"]),
    (["save", "--name", "n\udcff"], ["checkpoint name 'n\\udcff'"]),
    (["save", "--agent", "\udcff"], ["agent id '\\udcff'"]),
    (["fork", "agent_1a2b3c4d", "latest", "b\udcff"], ["agent id 'b\\udcff'"]),
    (["import", "seed", "--task-id", "t\udcff"], ["trailer 'Task-Id' value", "not valid UTF-8"]),
    (["remote", "add", "o\udcff", "elsewhere.git"], ["remote name 'o\\udcff'"]),
    (["remote", "add", "o", "elsewhere\udcff.git"], ["remote URL", "not valid UTF-8"]),
    (["remote", "add", "o", "http://user:hunter2@[::1"], ["remote URL 'http://***@[::1' is malformed"]),
    (["clone", "http://user:hunter2@[::1", "copy"], ["remote URL 'http://***@[::1' is malformed"]),
])
def test_undecodable_and_malformed_arguments_are_one_line_errors(gitstate, args, words):
    assert gitstate("save", input=state_json()).code == 0
    (gitstate.cwd / "seed").mkdir()
    (gitstate.cwd / "seed" / "agent_2_x.json").write_text(json.dumps(
        {"version": "1.0", "serialized_at": "2025-06-03T14:02:11+00:00",
         "state": AgentState(agent_id="agent_2").model_dump()}))
    before = snapshot(StateRepository.open(gitstate.cwd / ".gitstate"))
    result = gitstate(*args, input=state_json())
    assert_gitstate_error(result, *words)
    assert "hunter2" not in result.err
    assert snapshot(StateRepository.open(gitstate.cwd / ".gitstate")) == before
    assert not (gitstate.cwd / "copy").exists()


def test_undecodable_argv_bytes_from_a_real_process(tmp_path):
    proc = subprocess.run([str(EXECUTABLE), "--repo", "r.git", "save", "-m", b"caf\xe9"], cwd=tmp_path,
                          input=state_json().encode(), capture_output=True, check=False)
    assert proc.returncode == 1 and proc.stderr.decode().count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(b"Error: message 'caf\\udce9' is not valid UTF-8")


def test_message_build_refuses_lone_surrogates():
    with pytest.raises(InvalidArgumentError, match="message"):
        build_message("x\ud800", {})
    with pytest.raises(InvalidArgumentError, match="trailer 'K' value"):
        build_message("x", {"K": "\udcff"})


@pytest.mark.parametrize(("args", "code", "words"), [
    (["log", "agent_1a2b3c4d", "--since", "99999999999d"], 2, "further back than the year 1"),
    (["log", "agent_1a2b3c4d", "--since", "9" * 5000 + "s"], 2, "further back than the year 1"),
    (["log", "agent_1a2b3c4d", "--until", "9999-12-31T23:59:59.999999"], 0, "agent_1a2b3c4d"),
    (["log", "agent_1a2b3c4d", "--until", "9999-12-31T23:59:59.999999-05:00"], 0, "agent_1a2b3c4d"),
    (["log", "agent_1a2b3c4d", "--until", "0001-01-01T00:00:00+05:00", "--json"], 0, None),
    (["prune", "agent_1a2b3c4d", "--keep-within", "99999999y"], 2, "longer than 10,000 years"),
    (["prune", "agent_1a2b3c4d", "--keep-within", "9999y", "--dry-run"], 0, "within 9999y"),
])
def test_overflowing_times_and_durations_on_the_command_line(gitstate, args, code, words):
    assert gitstate("save", input=state_json()).code == 0
    result = gitstate(*args)
    assert (result.code, result.exception) == (code, None), result.err
    if words is None:
        assert result.out == ""
    else:
        assert words in (result.out if code == 0 else result.err)
    if code == 2:
        assert result.err.strip().splitlines()[-1].startswith("Error: Invalid value for")


def test_overflowing_durations_in_the_library():
    now = datetime(2025, 6, 3, tzinfo=UTC)
    for value in ("99999999y", "120001m", "3661000d", timedelta(days=999_999_999)):
        with pytest.raises(InvalidArgumentError, match="longer than 10,000 years"):
            RetentionPolicy(keep_within=value)
    with pytest.raises(InvalidArgumentError, match="whole number >= 0"):
        Duration(days=-1)
    earliest = datetime.min.replace(tzinfo=UTC)
    assert Duration(years=9999).before(now) == earliest == Duration(days=3_650_000).before(now)
    assert Duration(days=1).before(datetime(1, 1, 1, tzinfo=UTC)) == earliest


def test_a_policy_reaching_before_year_1_keeps_everything(repo):
    for day in (1, 2, 3):
        repo.save({"agent_id": "a"}, time=datetime(2025, 6, day, tzinfo=UTC))
    decisions = plan(repo.log("a"), RetentionPolicy(keep_within="5000y"), datetime(2025, 6, 4, tzinfo=UTC))
    assert [d.keep for d in decisions] == [True] * 3


@pytest.mark.parametrize(("redirect", "words"), [("<&-", "stdin is closed"),
                                                 ("0>/dev/null", "cannot read <stdin>")])
def test_closed_or_unreadable_stdin_is_a_usage_error(tmp_path, redirect, words):
    proc = subprocess.run(f"exec '{EXECUTABLE}' save {redirect}", shell=True, cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "GITSTATE_REPO": "r.git"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert words in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r.git").exists()


# -- a closed output pipe ends the command like git: killed by SIGPIPE, silently --------------

@pytest.fixture(scope="module")
def wordy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A repository whose listings and states print far more than a pipe holds (64 KB)."""
    repo = StateRepository.init(tmp_path_factory.mktemp("pipe") / "wordy.git")
    repo.configure_maintenance(auto_objects=0)
    lines = [f"line {i} " + "x" * 100 for i in range(3000)]
    repo.save({"agent_id": "a", "lines": lines})
    head = repo.save({"agent_id": "a", "lines": lines, "more": lines})
    names = b"".join(f"create refs/tags/agents/a/{i:04d}-{'n' * 120}\0{head.commit}\0".encode()
                     for i in range(1000))
    subprocess.run(["git", "--git-dir", repo.path, "update-ref", "--stdin", "-z"], input=names, check=True)
    return repo.path


@pytest.mark.parametrize("args", [["log", "a"], ["log", "a", "--json"], ["show", "a"], ["agents"],
                                  ["diff", "a", "latest~1", "--format", "text"],
                                  ["prune", "a", "--keep-last", "1", "--dry-run"]],
                         ids=lambda args: " ".join(args))
def test_a_closed_pipe_kills_the_command_with_sigpipe_and_no_message(wordy, args):
    proc = subprocess.Popen([str(EXECUTABLE), "--repo", wordy, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.read(1)  # like `| head -c 1`: read once, then go away
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert (proc.wait(), stderr) == (-signal.SIGPIPE, b"")


class Colour(Enum):
    RED = "red"


def _deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("extra", [
    {}, {"score": 0.25, "tiny": 1e-7, "huge": 1e16}, {"colour": Colour.RED}, {"pair": (1, 2.5)},
], ids=["plain", "floats", "enum", "tuple"])
def test_a_large_state_is_written_canonically_whatever_it_holds(repo: StateRepository,
                                                                extra: dict) -> None:
    """A state past the size where it is hashed while it is written: floats, Enums and
    tuples are pinned as in a small one."""
    state = {"agent_id": "a", "notes": ["lorem ipsum " * 100] * 200, "nested": [{"x": extra}]}
    repo.save(state)
    plain = json.loads(json.dumps(state, default=lambda v: v.value))  # the Enum's value
    reference = json.dumps(plain, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert git(repo, "show", "agents/a:state.json") == reference
    assert not [p for p in Path(repo.path, "objects").iterdir() if p.name.startswith("tmp")]
    fsck(repo)


@pytest.mark.parametrize("bad, path", [
    ({"score": math.nan}, "$.nested[0].score"), ({"deep": _deep(MAX_DEPTH)}, "$.nested[0].deep"),
], ids=["nan", "too-deep"])
def test_a_large_state_that_cannot_be_encoded_leaves_the_repository_as_it_was(
        repo: StateRepository, bad: dict, path: str) -> None:
    repo.save({"agent_id": "a"})
    before = snapshot(repo)
    with pytest.raises(EncodingError) as info:
        repo.save({"agent_id": "a", "notes": ["lorem ipsum " * 100] * 200, "nested": [bad]})
    assert info.value.path.startswith(path)
    assert snapshot(repo) == before


def test_a_large_state_that_cannot_be_encoded_names_its_fault_even_on_a_full_disk(
        tmp_path: Path) -> None:
    """A state that cannot be encoded is refused before anything is written, even where
    a write would fail (here: past the file size limit, as on a full disk)."""
    script = f"""
import math, resource, signal
from gitstate import EncodingError, StateRepository
repo = StateRepository.init({str(tmp_path / 'state.git')!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
try:
    repo.save({{"agent_id": "a", "notes": ["lorem ipsum " * 100] * 200, "score": math.nan}})
except EncodingError as exc:
    print("EncodingError", exc.path)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "EncodingError $.score", result.stderr
