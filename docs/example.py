"""An auditing agent that checkpoints every step into ./.gitstate, then looks back.

Run from any directory: ``python docs/example.py``. Each run audits with a new agent
(a fresh ``agent_<hex>`` id), so running it again adds another agent to the same
repository. Afterwards, try the command line on the same repository:
``gitstate agents``, ``gitstate log <agent>``, ``gitstate show <agent> first-finding``.
"""

from __future__ import annotations

import random

from gitstate import AgentState, StateRepository

REPOSITORY = ".gitstate"  # the default location, also used by the `gitstate` command

FILES = [
    "app/__init__.py", "app/config.py", "app/routes/refunds.py", "app/routes/invoices.py",
    "app/db/queries.py", "app/db/models.py", "app/auth/session.py", "app/auth/tokens.py",
    "app/routes/admin.py", "app/utils/render.py", "app/routes/webhooks.py", "app/routes/export.py",
    "app/services/payouts.py", "app/services/fx.py", "app/tasks/reconcile.py", "app/utils/crypto.py",
    "app/routes/health.py", "app/cli.py", "tests/test_refunds.py", "deploy/settings.prod.py",
]
FINDINGS = {
    "app/db/queries.py": {"id": "F-1", "severity": "high", "cwe": "CWE-89", "line": 88,
                          "title": "refund_id formatted into a SQL string"},
    "app/utils/render.py": {"id": "F-2", "severity": "medium", "cwe": "CWE-79", "line": 31,
                            "title": "invoice memo rendered without escaping"},
    "app/utils/crypto.py": {"id": "F-3", "severity": "high", "cwe": "CWE-327", "line": 12,
                            "title": "webhook signatures compared with MD5"},
}


def audit_step(state: AgentState, path: str, rng: random.Random) -> None:
    """One iteration of the agent: read a file, think, maybe report a finding."""
    state.increment_iteration()
    state.add_message("assistant", f"Reading {path} for user input reaching a sink.")
    state.add_action({"tool": "read_file", "path": path})
    state.add_observation({"path": path, "lines": rng.randint(40, 400), "sinks": rng.randint(0, 3)})
    state.add_tokens(rng.randint(800, 2400))
    if path in FINDINGS:
        state.add_finding(FINDINGS[path])
    if path == "app/routes/export.py":
        state.set_waiting("May the PoC for F-1 run against staging?")
        state.add_message("user", "Yes, staging only.")
        state.resume()


def main() -> None:
    repo = StateRepository.init(REPOSITORY)
    rng = random.Random()
    state = AgentState(agent_name="Payments auditor", agent_type="analysis", max_iterations=len(FILES),
                       task="Audit payments-service v2.14 for injection and crypto flaws",
                       knowledge_modules=["sql_injection", "xss", "crypto"])
    state.start()
    print(f"Auditing with agent {state.agent_id} into {repo.path}")

    for path in FILES:
        audit_step(state, path, rng)
        first_finding = len(state.findings) == 1 and path in FINDINGS
        if state.iteration == len(FILES):
            state.set_completed({"findings": [f["id"] for f in state.findings]})
        checkpoint = repo.save(state, name="first-finding" if first_finding else None)
        print(f"  step {state.iteration:2}: {checkpoint.short} {checkpoint.status:<9} {path}"
              + (" [first-finding]" if first_finding else ""))

    print("\nThe five newest checkpoints (repo.log):")
    for checkpoint in repo.log(state.agent_id, limit=5):
        print(f"  {checkpoint.short}  {checkpoint.created:%Y-%m-%d %H:%M:%S}  "
              f"iteration {checkpoint.iteration:2}  {checkpoint.status:<9}  {checkpoint.checkpoint_id}")

    old = repo.load(state.agent_id, "first-finding")
    print(f"\nLoaded the checkpoint named first-finding: iteration {old.iteration}, "
          f"{len(old.findings)} finding(s), {len(old.messages)} messages, status {old.status}")
    three_back = repo.load(state.agent_id, "latest~3")
    print(f"Three checkpoints before the end the agent was reading {three_back.actions_taken[-1]['path']}")
    latest = repo.load(state.agent_id)
    assert latest == state, "the newest checkpoint holds exactly the state saved last"
    print(f"The newest checkpoint equals the agent's final state ({len(latest.findings)} findings).")

    agents = repo.agents()
    print(f"\nThe repository holds {len(agents)} agent(s). Look around with the command line:")
    print(f"  gitstate agents\n  gitstate log {state.agent_id} --limit 5\n"
          f"  gitstate show {state.agent_id} first-finding --field findings")


if __name__ == "__main__":
    main()
