"""The one ref parser (gitstate.git.refs) reads what the git binary reads, as Store's readers and
maintenance's root scan use it; what it rewrites (packed-refs) is what git writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gitstate import CorruptObjectError, StateRepository
from gitstate.git.refs import is_refname, parse_packed


def run(repo: StateRepository, *args: str, input: bytes = b"") -> str:
    return subprocess.run(["git", "--git-dir", repo.path, *args], input=input, capture_output=True,
                          check=True).stdout.decode().strip()


SHA = "7edf9278cd5dc7c10017329f9619ee04b89427be"  # a placeholder for a real object's SHA


@pytest.mark.parametrize("content", [
    SHA, SHA + "\n", SHA.upper(), SHA + " ", SHA + "\r", SHA + "\r\n", SHA + "\tjunk", SHA + "\nmore\n",
    SHA + "x", " " + SHA, SHA + "\v", SHA + "\f", SHA[:39], "", "\n", "ref:", "ref: refs/tags/target",
    "ref:refs/tags/target", "ref:  refs/tags/target  \n", "ref: refs/tags/target\njunk",
])
def test_loose_refs_are_read_as_git_reads_them(repo: StateRepository, content: str) -> None:
    blob = run(repo, "hash-object", "-w", "--stdin", input=b"x")
    run(repo, "update-ref", "refs/tags/target", blob)
    Path(repo.path, "refs/tags/r").write_text(content.replace(SHA, blob).replace(SHA.upper(), blob.upper()))
    git_reads = subprocess.run(["git", "--git-dir", repo.path, "rev-parse", "--verify", "-q", "refs/tags/r"],
                               capture_output=True, text=True, check=False).stdout.strip() or None
    try:
        ours = repo._core.store.read_ref(b"refs/tags/r")
    except CorruptObjectError:
        ours = None
    assert (ours.decode() if ours else None) == git_reads


@pytest.mark.parametrize("content", [
    b"", b"# pack-refs with: peeled fully-peeled sorted \n", b"# pack-refs with:peeled\nS refs/heads/p\n",
    b"S refs/heads/p\n", b"U refs/heads/p\n", b"S\trefs/heads/p\n", b"S refs/heads/p\n^S\n",
    b"S refs/heads/p\n^U\n", b"S refs/heads/p\nS refs/heads/q\n",
    b"S refs/heads/p", b"\nS refs/heads/p\n", b"S refs/heads/p\n\n", b"garbage\n", b"# garbage\nS refs/heads/p\n",
    b"S refs/heads/p\n# c\n", b"^S\nS refs/heads/p\n", b"S refs/heads/p\n^S\n^S\n", b"S refs/heads/p\n^S junk\n",
    b"S  refs/heads/p\n",
])
def test_packed_refs_are_read_as_git_reads_them(repo: StateRepository, content: bytes) -> None:
    blob = run(repo, "hash-object", "-w", "--stdin", input=b"x").encode()
    content = content.replace(b"S", blob).replace(b"U", blob.upper())
    Path(repo.path, "packed-refs").write_bytes(content)
    listed = subprocess.run(["git", "--git-dir", repo.path, "for-each-ref", "--format=%(refname) %(objectname)"],
                            capture_output=True, check=False)
    try:
        ours = {name.decode(): entry.sha.decode() for name, entry in parse_packed(content).items()}
    except CorruptObjectError:
        ours = None
    git_reads = None if listed.returncode else dict(line.split() for line in listed.stdout.decode().splitlines())
    assert ours == git_reads


@pytest.mark.parametrize("name", [
    "refs/heads/a", "refs/heads/agents/x-1.2_b", "refs/tags/agents/x/first", "refs/notes/commits", "refs/stash",
    "refs", "refs/", "refs/heads/", "refs//a", "refs/heads/.a", "refs/heads/a.", "refs/heads/a.lock",
    "refs/heads/a.lock/b", "refs/heads/a..b", "refs/heads/a@{1}", "refs/heads/a b", "refs/heads/a~1",
    "refs/heads/a^", "refs/heads/a:b", "refs/heads/a?", "refs/heads/a*", "refs/heads/a[b", "refs/heads/a\\b",
    "refs/heads/a\x7f", "refs/heads/a\tb", "refs/heads/@", "refs/heads/é",
])
def test_ref_names_are_checked_as_git_checks_them(name: str) -> None:
    git_accepts = subprocess.run(["git", "check-ref-format", name], capture_output=True, check=False).returncode == 0
    assert is_refname(name.encode()) == git_accepts


def test_deleting_packed_refs_writes_the_file_git_writes(repo: StateRepository, tmp_path: Path) -> None:
    """packed-refs is rewritten from what the one parser read: header and peeled lines kept."""
    for agent_id in ("a", "b"):
        repo.save({"agent_id": agent_id, "iteration": 1}, name="first")
        repo.save({"agent_id": agent_id, "iteration": 2}, name="second")
    run(repo, "tag", "-a", "-m", "release", "release", "refs/heads/agents/b")  # peels to b's head
    run(repo, "pack-refs", "--all")
    copy = tmp_path / "copy.git"
    shutil.copytree(repo.path, copy)
    doomed = [ref for ref in run(repo, "for-each-ref", "--format=%(refname)").split()
              if ref.startswith(("refs/heads/agents/a", "refs/tags/agents/a/"))]
    subprocess.run(["git", "--git-dir", str(copy), "update-ref", "--stdin"], check=True,
                   input="".join(f"delete {ref}\n" for ref in doomed).encode())
    repo.delete_agent("a")
    ours = Path(repo.path, "packed-refs").read_bytes()
    assert ours == (copy / "packed-refs").read_bytes()
    assert ours.startswith(b"# pack-refs with: ") and b"\n^" in ours and b"agents/a" not in ours
    assert run(repo, "rev-parse", "release^{commit}") == run(repo, "rev-parse", "refs/heads/agents/b")
    assert repo.names("b") == {"first": repo.resolve("b", "first").commit,
                               "second": repo.latest("b").commit}
