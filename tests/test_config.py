"""The repository's config: one writer under one lock beside git, and what open refuses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import fsck, git, snapshot
from gitstate_cli.main import cli
from kill_helpers import CHILD, kill_at

from gitstate import (
    ConcurrentUpdateError,
    MaintenanceSettings,
    NotARepositoryError,
    RepositoryFormatError,
    StateRepository,
)

ROUNDS = 60


def test_concurrent_config_writers_keep_every_change(repo):
    """Two gitstate processes and ``git config`` change the config at the same time."""
    start = "input()  # all start together\n"
    settings = CHILD + start + f"for i in range({ROUNDS}): repo.configure_maintenance(grace_seconds=1000 + i)"
    remotes = CHILD + start + f"for i in range({ROUNDS}): repo.remote_add(f'r{{i}}', f'https://example.invalid/r{{i}}.git')"
    gitconfig = (f"read go; for i in $(seq {ROUNDS}); do until git --git-dir '{repo.path}' config --add "
                 "test.value $i 2>/dev/null; do :; done; done")  # git fails at once on a held config.lock
    children = [subprocess.Popen([sys.executable, "-c", code, repo.path], stdin=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for code in (settings, remotes)]
    children.append(subprocess.Popen(["sh", "-c", gitconfig], stdin=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True))
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _, err = child.communicate()
        assert child.returncode == 0, err
    assert [r.name for r in repo.remotes()] == sorted(f"r{i}" for i in range(ROUNDS))
    stored = MaintenanceSettings.read(repo.path)
    assert stored.grace_seconds == 1000 + ROUNDS - 1 and stored.auto_objects == 0
    assert git(repo, "config", "--get-all", "test.value").split() == [str(i) for i in range(1, ROUNDS + 1)]
    assert git(repo, "config", "--get-all", "remote.r7.fetch").count("\n") == 2
    assert not Path(repo.path, "config.lock").exists()


def test_a_config_lock_left_by_a_killed_gitstate_writer_is_removed(repo):
    kill_at(repo, "repo.configure_maintenance(grace_seconds=5)", "rename", "config.lock")
    assert Path(repo.path, "config.lock").exists()
    again = StateRepository.open(repo.path, lock_timeout=5)
    assert again.configure_maintenance(grace_seconds=6).grace_seconds == 6  # at once, not after 5 s
    assert not Path(repo.path, "config.lock").exists()
    git(repo, "config", "gitstate.note", "git can write again")
    assert MaintenanceSettings.read(repo.path).grace_seconds == 6


def test_a_config_lock_held_by_a_live_process_is_waited_for(repo):
    lock = Path(repo.path, "config.lock")
    lock.write_text("held by git config\n")  # as a running `git config` holds it
    child = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "signal=none", "-P", str(lock), "-e", "trace=openat,renameat2",
         sys.executable, "-c", CHILD + "repo.remote_add('origin', 'https://example.invalid/o.git')",
         repo.path], stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    line = child.stderr.readline()  # its first attempt (a spare file renamed there): the lock is held, it waits
    assert "config.lock" in line and "EEXIST" in line, line
    assert lock.read_text() == "held by git config\n"
    lock.unlink()  # the git process is done
    _, err = child.communicate()
    assert child.returncode == 0, err
    assert [r.name for r in repo.remotes()] == ["origin"]


def test_a_config_lock_held_too_long_is_a_typed_error(tmp_path):
    repo = StateRepository.init(tmp_path / "r.git", lock_timeout=0.2)
    lock = Path(repo.path, "config.lock")
    lock.write_text("held by git config\n")
    before = snapshot(repo)
    with pytest.raises(ConcurrentUpdateError, match="config.lock stayed locked"):
        repo.configure_maintenance(grace_seconds=1)
    with pytest.raises(ConcurrentUpdateError, match="config.lock"):
        repo.remote_add("origin", "https://example.invalid/o.git")
    assert snapshot(repo) == before and lock.read_text() == "held by git config\n"


def test_settings_and_remotes_go_through_one_writer_that_git_reads(repo):
    repo.configure_maintenance(max_depth=10)
    repo.remote_add("origin", "https://example.invalid/o.git")
    repo.configure_maintenance(pack_factor=3)
    assert git(repo, "config", "gitstate.maxdepth").strip() == "10"
    assert git(repo, "config", "gitstate.packfactor").strip() == "3"
    assert git(repo, "config", "remote.origin.url").strip() == "https://example.invalid/o.git"
    repo.remote_remove("origin")
    assert git(repo, "config", "--get-regexp", "^remote\\.", check=False) == ""
    assert MaintenanceSettings.read(repo.path).max_depth == 10


def test_remote_remove_killed_halfway_can_be_run_again(tmp_path, repo):
    server = tmp_path / "server.git"
    subprocess.run(["git", "init", "-q", "--bare", str(server)], check=True)
    repo.save({"agent_id": "a"}, name="n")
    repo.remote_add("origin", str(server))
    repo.push("origin")
    repo.fetch("origin")  # tracking refs of agent a and of its name
    kill_at(repo, "repo.remote_remove('origin')", "unlink", "refs/remotes/origin/tags/agents/a/n")
    assert [r.name for r in repo.remotes()] == ["origin"]  # still configured ...
    repo.remote_remove("origin")  # ... so removing it again finishes the job
    assert repo.remotes() == [] and git(repo, "for-each-ref", "refs/remotes") == ""


# -- what open refuses ------------------------------------------------------------------------
def git_init(path: Path, *args: str) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", *args, str(path)], check=True)
    return path


def git_accepts(path: Path) -> bool:
    return subprocess.run(["git", "--git-dir", str(path), "rev-parse", "--git-dir"],
                          check=False, capture_output=True).returncode == 0


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_sha256_repository_is_refused_untouched(tmp_path):
    path = git_init(tmp_path / "sha256.git", "--object-format=sha256")
    before = tree(path)
    for attempt in (StateRepository.open, StateRepository.init):
        with pytest.raises(RepositoryFormatError, match="objectformat = sha256"):
            attempt(path)
    assert tree(path) == before
    assert git_accepts(path)


@pytest.mark.parametrize("version, extensions, accepted, git_agrees", [
    ("0", {}, True, True),
    ("1", {}, True, True),
    ("1", {"objectFormat": "sha1", "worktreeConfig": "true"}, True, True),
    ("1", {"someFuture": "x"}, False, True),  # git refuses unknown extensions in version 1 ...
    ("0", {"someFuture": "x"}, False, False),  # ... ignores them in version 0; gitstate refuses
    ("0", {"preciousObjects": "true"}, False, False),  # maintenance would delete objects
    ("0", {"objectFormat": "sha1"}, False, True),  # an extension of version 1 in version 0
    ("1", {"objectFormat": "SHA256"}, False, True),
    ("1", {"compatObjectFormat": "sha256"}, False, None),  # newer gits know these two
    ("1", {"refStorage": "reftable"}, False, None),
    ("2", {}, False, True),
    ("banana", {}, False, True),
])
def test_open_follows_gits_rules_for_formats_and_extensions(tmp_path, version, extensions, accepted,
                                                            git_agrees):
    path = git_init(tmp_path / "r.git")
    config = path / "config"
    text = config.read_text().replace("repositoryformatversion = 0", f"repositoryformatversion = {version}")
    config.write_text(text + "".join(f"[extensions]\n\t{k} = {v}\n" for k, v in extensions.items()))
    before = tree(path)
    if accepted:
        StateRepository.open(path).save({"agent_id": "a"})
    else:
        with pytest.raises(RepositoryFormatError) as error:
            StateRepository.open(path)
        assert str(config) in str(error.value)
        assert tree(path) == before
    if git_agrees is not None:
        assert git_accepts(path) == (accepted if git_agrees else not accepted)


def test_a_config_that_does_not_parse_is_refused_naming_the_line(tmp_path):
    repo = StateRepository.init(tmp_path / "r.git")
    config = Path(repo.path, "config")
    config.write_text(config.read_text() + "[remote \"x\"\n\turl = y\n")
    before = snapshot(repo)
    with pytest.raises(RepositoryFormatError, match=rf"{config} line \d+: .*trailing \]"):
        StateRepository.open(repo.path)
    with pytest.raises(NotARepositoryError):  # the same error, whatever reads the config
        repo.remotes()
    assert snapshot(repo) == before
    cp = repo.save({"agent_id": "a"})  # damaged after open: a save still lands (no maintenance)
    assert repo.latest("a").commit == cp.commit


def test_the_cli_refuses_a_sha256_repository_in_one_line(tmp_path):
    path = git_init(tmp_path / "r.git", "--object-format=sha256")
    result = CliRunner().invoke(cli, ["--repo", str(path), "log", "a"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: ") and "objectformat = sha256" in result.stderr


def test_processes_creating_one_repository_at_once_all_get_it(tmp_path):
    """Each init builds the repository aside and renames it into place: one wins, the others
    open it; none sees a half-made repository."""
    path = tmp_path / "shared.git"
    code = ("import sys\nfrom gitstate import StateRepository\nsys.stdin.readline()\n"
            "repo = StateRepository.init(sys.argv[1])\n"
            "repo.save({'agent_id': 'w' + sys.argv[2], 'iteration': 1})\nprint('ok')\n")
    for _round in range(3):
        shutil.rmtree(path, ignore_errors=True)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(i)], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i in range(4)]
        for proc in procs:  # released together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out.strip() == "ok", err
        assert sorted(a.agent_id for a in StateRepository.open(path).agents()) == ["w0", "w1", "w2", "w3"]
        assert [p.name for p in tmp_path.iterdir()] == ["shared.git"]  # no temporary folder left
        fsck(str(path))
