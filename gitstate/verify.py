"""``verify``: check every object, ref, checkpoint trailer and state; list what is wrong.

Objects: each reads back and hashes to its name; packs and their indexes:
checksums. Refs: agent branches and tags name valid agents and point to commits.
Checkpoints (of each agent's line and of what merges brought in): the trailers
gitstate writes are present and consistent (``Agent-Id``
a valid id, equal to the state's ``agent_id``: it names the agent that wrote the
checkpoint, which a fork or ``pull --into`` may hold), ids unique per agent, and
each ``state.json`` canonical (re-encoding it gives the same bytes). Every
problem is listed: an unreadable commit ends the walk of that agent's history
only. Objects and packs that maintenance removes meanwhile are no problem.
"""

from __future__ import annotations

import os
import re
from binascii import hexlify
from dataclasses import dataclass, field

from . import codec
from .core import Core
from .errors import CorruptObjectError, DamagedObjectError, GitstateError
from .git.layout import CommitInfo
from .git.objectset import loose_shas, maintenance_reader
from .git.reader import COMMIT, PackIndex
from .git.reclaim import pack_bases
from .git.refs import parse_loose, read_file
from .ids import BRANCH_PREFIX, TAG_PREFIX, is_checkpoint_id, validate_agent_id
from .message import integer
from .message import parse as parse_message


@dataclass(frozen=True)
class Problem:
    """One thing :func:`verify` found wrong; ``subject`` names the object or ref."""

    kind: str  # "object", "pack", "ref", "history", "trailer", "state"
    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.message}"


@dataclass
class VerifyResult:
    """The outcome of :func:`verify`: counts and the list of problems (empty if sound)."""

    objects: int = 0
    agents: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(core: Core) -> VerifyResult:
    """Check the repository (see the module docstring); return the counts and every problem.

    Operations a killed process left half done are completed first (a journal that
    cannot be is a problem).
    """
    result = VerifyResult()
    unfinished: dict[str, GitstateError] = {}
    core.store.complete_journals(unfinished)  # interrupted operations are completed first
    for agent_id, error in sorted(unfinished.items()):
        result.problems.append(Problem("ref", f"journal of agent {agent_id}", str(error)))
    _verify_objects(core.store.objects_dir, result)
    _verify_refs(core, result)
    return result


def _verify_objects(objects_dir: str, result: VerifyResult) -> None:
    """Packs, their indexes and objects, and loose objects (see ``verify``)."""
    problems = result.problems
    seen: set[bytes] = set()
    with maintenance_reader(objects_dir) as reader:
        for base in pack_bases(objects_dir):
            name = os.path.basename(base)
            for sha, message in reader.check_pack(base + ".idx"):
                problems.append(Problem("pack", name, message) if sha is None
                                else Problem("object", sha.decode(), message))
            try:
                seen.update(PackIndex(base + ".idx").shas())
            except (FileNotFoundError, DamagedObjectError):  # gone, or listed above
                continue
        for folder in sorted(os.listdir(objects_dir)):
            path = os.path.join(objects_dir, folder)
            if re.fullmatch("[0-9a-f]{2}", folder) and os.path.isfile(path):
                problems.append(Problem("object", path, "a file where git keeps a folder of "
                                                         "loose objects"))
        for binsha in loose_shas(objects_dir):
            sha = hexlify(binsha)
            damage = reader.check_loose(sha)
            if damage is not None:
                problems.append(Problem("object", sha.decode(), damage))
            seen.add(binsha)
    result.objects = len(seen)


def _verify_refs(core: Core, result: VerifyResult) -> None:
    """Refs, trailers and canonical states of every agent (see ``verify``)."""
    store = core.store
    problems = result.problems
    bad: dict[bytes, GitstateError] = {}
    branches = store.read_refs(BRANCH_PREFIX.encode(), bad)
    tags = store.read_refs(TAG_PREFIX.encode(), bad)
    for ref, error in sorted(bad.items()):
        problems.append(Problem("ref", ref.decode(errors="replace"), str(error)))
    _check_head(core.path, problems)
    for ref, sha in sorted(tags.items()):
        agent = ref[len(TAG_PREFIX):].decode(errors="replace").partition("/")[0]
        _check_ref(core, ref, sha, agent, problems)
    for ref, sha in sorted(branches.items()):
        agent = ref[len(BRANCH_PREFIX):].decode(errors="replace")
        if not _check_ref(core, ref, sha, agent, problems):
            continue
        result.agents += 1
        ids: set[str] = set()
        line: set[bytes] = set()
        merged: list[bytes] = []  # the other parents of merges
        try:
            for commit in core.walk(sha):
                result.checkpoints += 1
                line.add(commit.id)
                merged += commit.parents[1:]
                _check_checkpoint(core, commit, ids, f"{agent}@{commit.id.decode()[:12]}", problems)
        except CorruptObjectError as exc:  # a parent that cannot be read: the walk ends there
            problems.append(Problem("history", agent, f"{exc}; older checkpoints are not checked"))
        _verify_merged(core, agent, merged, line, result)


def _verify_merged(core: Core, agent: str, todo: list[bytes], seen: set[bytes],
                   result: VerifyResult) -> None:
    """The checkpoints merges brought into an agent's history (each once; their ids are
    unique among themselves, not against the agent's line, which may hold a rewritten copy)."""
    ids: set[str] = set()
    while todo:
        sha = todo.pop()
        if sha in seen:
            continue
        seen.add(sha)
        try:
            commit = core.commit(sha)
        except CorruptObjectError as exc:
            result.problems.append(Problem("history", agent, f"{exc}; the history a merge brought "
                                                             "in is not checked beyond it"))
            continue
        result.checkpoints += 1
        todo.extend(commit.parents)
        _check_checkpoint(core, commit, ids, f"{agent}@{sha.decode()[:12]}", result.problems)


def _check_head(path: str, problems: list[Problem]) -> None:
    """``HEAD``, without which git does not take the folder for a repository (gitstate does)."""
    if not os.path.isfile(os.path.join(path, "HEAD")):
        problems.append(Problem("ref", "HEAD", "is missing: git does not see a repository here"))
        return
    try:  # the file itself; what it names is checked with the ref it names
        parse_loose(read_file(os.path.join(path, "HEAD")), "HEAD")
    except CorruptObjectError as exc:
        problems.append(Problem("ref", "HEAD", f"{exc}: git does not see a repository here"))


def _check_ref(core: Core, ref: bytes, sha: bytes, agent: str,
               problems: list[Problem]) -> bool:
    name = ref.decode(errors="replace")
    try:
        validate_agent_id(agent)
    except GitstateError as exc:
        problems.append(Problem("ref", name, str(exc)))
        return False
    try:
        core.raw(sha, COMMIT)
    except GitstateError as exc:  # missing, unreadable, or not a commit
        problems.append(Problem("ref", name, f"does not point to a commit: {exc}"))
        return False
    return True


def _check_checkpoint(core: Core, commit: CommitInfo, ids: set[str], subject: str,
                      problems: list[Problem]) -> None:
    """The trailers of one checkpoint, and its state: canonical, of the agent Agent-Id names."""
    _summary, trailers = parse_message(commit.message)
    checkpoint_id = trailers.get("Checkpoint-Id")
    if checkpoint_id is None or not is_checkpoint_id(checkpoint_id):
        problems.append(Problem("trailer", subject, f"Checkpoint-Id missing or invalid: {checkpoint_id!r}"))
    elif checkpoint_id in ids:
        problems.append(Problem("trailer", subject, f"Checkpoint-Id {checkpoint_id} used twice"))
    else:
        ids.add(checkpoint_id)
    writer: str | None = trailers.get("Agent-Id")  # who wrote it (a fork holds others')
    try:
        validate_agent_id(writer)
    except GitstateError as exc:
        problems.append(Problem("trailer", subject, f"Agent-Id missing or invalid: {exc}"))
        writer = None
    version = trailers.get("Schema-Version")
    number = integer(version)
    if number is None or number < 0:
        problems.append(Problem("trailer", subject, f"Schema-Version missing or invalid: {version!r}"))
    iteration = trailers.get("Iteration")
    if iteration is not None and integer(iteration) is None:
        problems.append(Problem("trailer", subject, f"Iteration is not an integer: {iteration!r}"))
    try:
        data = core.state_json(commit)
    except GitstateError as exc:
        problems.append(Problem("state", subject, f"state.json unreadable: {exc}"))
        return
    try:
        state = codec.decode(data)
        canonical = codec.encode(state)
    except GitstateError as exc:
        problems.append(Problem("state", subject, f"state.json is not valid JSON: {exc}"))
        return
    if canonical != data:
        problems.append(Problem("state", subject, "state.json is not in canonical form"))
    owner = state.get("agent_id") if isinstance(state, dict) else None
    if writer is not None and isinstance(owner, str) and owner != writer:
        problems.append(Problem("state", subject, f"the state's agent_id is {owner!r}, "
                                                  f"its Agent-Id trailer {writer!r}"))
