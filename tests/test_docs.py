"""Every example in README.md and docs/ runs, and shows what the code prints.

Each page runs in a fresh folder holding a copy of ``fixtures/`` (as a checkout does):

- ``python`` blocks run in order, in one namespace per page; a line ``EXPR  # -> SHOWN``
  also checks that ``repr(EXPR)`` is SHOWN;
- ``console`` blocks are shell sessions: each ``$ COMMAND`` runs (``gitstate ...`` alone
  in-process, anything with shell syntax through bash with the installed executable first
  on PATH), and its output (stdout and stderr) must be the lines shown under it.

``bash`` blocks are the project's own commands (install, the tests, benchmarks), not run here.
Outputs are compared after masking what changes from run to run: commit SHAs, checkpoint
ids, times, durations and the folder (shown as ``/home/me/audit``). In a shown line, ``...``
stands for any text; a line ``...`` alone for any lines. The examples in the commands'
``--help`` are checked the same way (``test_help_examples``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import types
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli_helpers import EXECUTABLE
from gitstate_cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHOWN_FOLDER = "/home/me/audit"
RUN = {"python", "console"}


@dataclass
class Block:
    kind: str
    text: str
    line: int  # where it starts in its page, for failure messages


def blocks(page: Path) -> list[Block]:
    found, lines, kind, start = [], page.read_text().splitlines(), None, 0
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        if kind is None and line.startswith("```"):
            kind, start, body = line[3:].strip(), number, []
        elif kind is not None and line.rstrip() == "```":
            found.append(Block(kind, "\n".join(body) + "\n", start))
            kind = None
        elif kind is not None:
            body.append(line)
    return found


def test_every_page_has_runnable_examples_and_the_readme_stays_short():
    counts = {page.name: sum(len(sessions(b.text)) if b.kind == "console" else b.kind == "python"
                             for b in blocks(page)) for page in PAGES}  # commands and Python blocks
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    setup = next(b for b in blocks(ROOT / "README.md") if b.kind == "bash")  # the two set-up commands first
    assert "pip install" in setup.text and readme.index(setup.text) < readme.index("```console")
    assert sum(counts.values()) >= 80, counts


# -- masking --------------------------------------------------------------------------------

_MASKS = [
    (re.compile(r"\b\d+\.\d+ s\b"), "<seconds>"),
    (re.compile(r'(?<="seconds": )[0-9.e-]+'), "<seconds>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{7,40}(?![0-9A-Za-z])"), "<sha>"),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
]


def mask(text: str, folder: Path) -> str:
    text = text.replace(str(folder), SHOWN_FOLDER)
    for pattern, label in _MASKS:
        text = pattern.sub(label, text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def matches(shown: str, actual: str) -> bool:
    """Whether the actual output is what the page shows, ``...`` standing for any text."""
    pattern = ""
    for line in shown.splitlines():
        if line == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*?".join(map(re.escape, line.split("..."))) + r"\n"
    return re.fullmatch(pattern, actual + "\n" if actual else "") is not None


# -- running a page -------------------------------------------------------------------------

@dataclass
class Step:
    command: str
    shown: str


def sessions(text: str) -> list[Step]:
    steps: list[Step] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:], ""))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1].shown += line + "\n"
    return steps


def run_command(command: str, folder: Path) -> str:
    """The command's output as a terminal shows it (stdout and stderr, no colour)."""
    words = shlex.split(command, comments=True)
    if words and words[0] == "gitstate" and not re.search(r"[|;&<>`$]|\s#", command.split(" #")[0]):
        result = CliRunner().invoke(cli, words[1:], prog_name="gitstate", env={"NO_COLOR": "1"})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.output
    env = {**os.environ, "PATH": f"{EXECUTABLE.parent}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    env.pop("GITSTATE_REPO", None)
    proc = subprocess.run(["bash", "-c", command], cwd=folder, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    return proc.stdout


def check_python(block: Block, namespace: dict[str, Any], where: str) -> None:
    source = re.sub(r"^(\s*)(?:([A-Za-z_]\w*) = )?(\S.*?)\s+# -> (.+)$", _checked, block.text, flags=re.M)
    exec(compile(source, where, "exec"), namespace)


def _checked(line: re.Match[str]) -> str:
    """``EXPR  # -> SHOWN`` (or ``NAME = EXPR  # -> SHOWN``) as a statement that checks it."""
    indent, name, expression, shown = line.groups()
    if name:
        return f"{indent}{name} = {expression}; __shows({name}, {shown!r})"
    return f"{indent}__shows({expression}, {shown!r})"


def prepare(folder: Path) -> None:
    shutil.copytree(ROOT / "fixtures", folder / "fixtures")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("GITSTATE_REPO", "NO_COLOR", "PAGER", "GITSTATE_PAGER"):
        monkeypatch.delenv(name, raising=False)
    prepare(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_examples(page: Path, folder: Path, monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("docs_example")  # a real module: typing resolves names through it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__

    def shows(value: Any, shown: str) -> None:
        assert matches(mask(shown, folder), mask(repr(value), folder)), f"{value!r} is not {shown}"

    namespace["__shows"] = shows
    for block in blocks(page):
        where = f"{page.relative_to(ROOT)}:{block.line}"
        if block.kind == "python":
            check_python(block, namespace, where)
        elif block.kind == "console":
            for step in sessions(block.text):
                actual = mask(run_command(step.command, folder), folder)
                assert matches(mask(step.shown, folder), actual), \
                    f"{where}: $ {step.command}\n--- shown\n{step.shown}--- printed\n{actual}\n"


# -- the examples in --help -------------------------------------------------------------------

def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix}{name} ")
    return found


# serve runs until stopped: its example is checked by tests/test_web.py, which starts it as a process
HELP_EXAMPLES = [(name, command) for name, command in _commands(cli)
                 if "\n    $ " in (command.help or "") and name != "serve"]


def test_the_commands_with_examples_in_help():
    assert {name for name, _ in HELP_EXAMPLES} >= {"init", "save", "agents", "log", "show", "tag",
                                                   "rollback", "fork", "delete", "diff", "prune",
                                                   "import", "gc", "verify"}


@pytest.mark.parametrize("name, command", HELP_EXAMPLES, ids=[n for n, _ in HELP_EXAMPLES])
def test_help_examples(name: str, command: click.Command, folder: Path):
    """Each command's example, in a folder holding ``agent_checkpoints/`` (the seed's files),
    imported into ``./.gitstate`` (except for the commands that make a repository) beside an
    empty bare repository ``fleet.git``."""
    shutil.copytree(folder / "fixtures" / "seed_checkpoints", folder / "agent_checkpoints")
    subprocess.run(["git", "init", "-q", "--bare", "fleet.git"], cwd=folder, check=True)
    help_text = command.help or ""
    example = help_text.split("\b\n", 1)[1].split("\n\n")[0]  # the paragraph after click's \b
    example = "\n".join(line[4:] for line in example.splitlines()) + "\n"
    steps = sessions(example)
    if not steps[0].command.startswith(("gitstate init", "gitstate import", "gitstate clone")):
        run_command("gitstate import agent_checkpoints", folder)
    for step in steps:
        actual = mask(run_command(step.command, folder), folder)
        if step.shown:
            assert matches(mask(step.shown, folder), actual), \
                f"gitstate {name} --help: $ {step.command}\n--- shown\n{step.shown}--- printed\n{actual}\n"
