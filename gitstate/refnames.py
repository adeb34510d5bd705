"""Agent ids and checkpoint names read from a repository's refs alone, without opening it.

No object is read, so neither dulwich nor pydantic is imported: shell completion
lists agent ids this way in a few milliseconds. A damaged ref is left out.
"""

from __future__ import annotations

import os

from .git.locks import Locks
from .git.refs import Refs
from .git.spares import Spares
from .ids import BRANCH_PREFIX, is_valid_name, naming_problem, tag_prefix


def _refs(path: str | os.PathLike[str], prefix: bytes) -> dict[bytes, bytes]:
    """The readable refs under ``prefix`` of the repository at ``path`` ({} if there is none)."""
    path = os.fspath(path)
    return Refs(path, Locks(path, 0.0, False, Spares(path))).read_all(prefix, errors={})


def agent_ids(path: str | os.PathLike[str]) -> dict[str, str]:
    """Every agent of the repository at ``path`` with its head commit SHA, sorted by id."""
    prefix = BRANCH_PREFIX.encode()
    heads = {ref[len(prefix):].decode(errors="replace"): sha.decode()
             for ref, sha in _refs(path, prefix).items()}
    return {agent: heads[agent] for agent in sorted(heads)
            if naming_problem(agent, "agent id", existing=True) is None}


def checkpoint_names(path: str | os.PathLike[str], agent_id: str) -> dict[str, str]:
    """The checkpoint names of agent ``agent_id`` with the commit SHAs they name, sorted."""
    if naming_problem(agent_id, "agent id", existing=True) is not None:
        return {}
    prefix = tag_prefix(agent_id)
    names = {ref[len(prefix):].decode(errors="replace"): sha.decode()
             for ref, sha in _refs(path, prefix).items()}
    return {name: names[name] for name in sorted(names) if is_valid_name(name)}
