"""The public API of ``StateRepository``: its methods and their parameters stay as documented.

Restructuring the code behind the façade must not change a name, a parameter, its kind
(``*`` keyword-only, ``**`` var-keyword) or its default.
"""

from __future__ import annotations

import inspect

from gitstate import StateRepository

KINDS = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "", inspect.Parameter.KEYWORD_ONLY: "*",
         inspect.Parameter.VAR_KEYWORD: "**"}

API = {
    "agents": "(*errors=None)",
    "clone": "classmethod (url, path, *remote='origin', *progress=None, **options)",
    "close": "()",
    "configure_maintenance": "(**changes)",
    "core": "property",
    "count": "(agent_id)",
    "delete": "(agent_id, rev)",
    "delete_agent": "(agent_id)",
    "diff": "(agent_id, rev_a, rev_b=None, *other_agent=None)",
    "export_bundle": "(agent_id, rev, path)",
    "export_state": "(agent_id, rev, path)",
    "fetch": "(remote, agents=None, *progress=None)",
    "fields": "(agent_id, paths, *limit=None, *cache=None)",
    "find": "(agent_id, *changed=None, *where=None, *cache=None)",
    "fork": "(agent_id, rev, new_agent_id)",
    "gc": "(*prune=False, *grace_seconds=None, *progress=None)",
    "heads": "(*errors=None)",
    "import_seed": "(directory, *task_id=None, *dry_run=False, *progress=None)",
    "init": "classmethod (path, **options)",
    "latest": "(agent_id)",
    "load": "(agent_id, rev=None, *model=AgentState)",
    "log": "(agent_id, *limit=None, *before=None, *since=None, *status=None)",
    "log_all": "(*limit=None)",
    "maintenance_settings": "property",
    "merge": "(agent_id, other, *strategy=None)",
    "merge_base": "(agent_id, other)",
    "names": "(agent_id)",
    "open": "classmethod (path, **options)",
    "prune": "(agent_id, policy, *dry_run=False, *now=None, *grace=None, *progress=None)",
    "pull": "(remote, agents=None, *into=None, *rebase=False, *merge=False, *strategy=None, "
            "*progress=None)",
    "push": "(remote, agents=None, *tags=True, *force=False, *progress=None)",
    "read_state": "(commit)",
    "reclaim": "(*grace=None)",
    "remote_add": "(name, url)",
    "remote_remove": "(name)",
    "remote_rename": "(old, new)",
    "remote_set_url": "(name, url)",
    "remotes": "()",
    "resolve": "(agent_id, rev=None)",
    "rollback": "(agent_id, rev, *hard=False)",
    "save": "(state, *agent_id=None, *name=None, *message=None, *time=None, *trailers=None)",
    "tag": "(agent_id, name, rev=None)",
    "timeline": "(agent_id, paths=(), *cache=None)",
    "untag": "(agent_id, name)",
    "verify": "()",
    "wait_for_maintenance": "()",
}


def describe(name: str) -> str:
    attr = inspect.getattr_static(StateRepository, name)
    if isinstance(attr, property):
        return "property"
    function = attr.__func__ if isinstance(attr, classmethod) else attr
    parts = []
    for parameter in list(inspect.signature(function).parameters.values())[1:]:
        default = parameter.default
        shown = ("" if default is inspect.Parameter.empty
                 else "=" + (default.__name__ if isinstance(default, type) else repr(default)))
        parts.append(KINDS[parameter.kind] + parameter.name + shown)
    return ("classmethod " if isinstance(attr, classmethod) else "") + f"({', '.join(parts)})"


def test_the_public_methods_and_their_parameters_are_as_documented() -> None:
    public = sorted(name for name in dir(StateRepository) if not name.startswith("_"))
    assert public == sorted(API)
    assert {name: describe(name) for name in public} == API
