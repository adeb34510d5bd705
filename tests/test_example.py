"""docs/example.py, the end-to-end example the README names, run as a user runs it: twice, in one directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import fsck, git

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "example.py"


def test_example_runs_repeatedly_into_the_default_repository(tmp_path):
    outputs = [subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True,
                              text=True, check=True).stdout for _ in range(2)]
    repo = tmp_path / ".gitstate"
    agents = [re.search(r"Auditing with agent (\S+)", output)[1] for output in outputs]
    assert sorted(agents) == git(repo, "for-each-ref", "--format=%(refname:lstrip=3)",
                                 "refs/heads/agents/").split()
    for agent_id, output in zip(agents, outputs):
        assert git(repo, "rev-list", "--count", f"agents/{agent_id}").strip() == "20"
        assert git(repo, "rev-parse", "--verify", f"agents/{agent_id}/first-finding").strip()
        assert "Loaded the checkpoint named first-finding: iteration 5, 1 finding(s)" in output
        assert "(repo.diff): iteration 5→20, status running→completed" in output
    assert "The repository holds 2 agent(s)" in outputs[1]
    fsck(str(repo))
