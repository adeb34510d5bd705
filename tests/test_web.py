"""The web view's JSON API and its safety, through a real server on 127.0.0.1.

The pages themselves run in a real browser in tests/test_web_browser.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from gitstate import InvalidArgumentError
from gitstate.diff import apply_patch

from cli_helpers import EXECUTABLE, assert_gitstate_error, interruptible
from conftest import git, snapshot
from web_helpers import MAIN, RETRY, SOLO, get_json, request, running, sample_repository

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sample(repo):
    return repo, sample_repository(repo)


def test_agents_page_data_counts_filters_and_pages(sample):
    repo, _saved = sample
    with running(repo) as server:
        page = get_json(server, "/api/agents")
        assert page["total"] == 3
        rows = {a["agent_id"]: a for a in page["agents"]}
        assert [a["agent_id"] for a in page["agents"]] == [MAIN, RETRY, SOLO]
        assert {k: rows[k]["count"] for k in rows} == {MAIN: 8, RETRY: 6, SOLO: 1}
        assert rows[MAIN]["head"]["status"] == "completed" and rows[MAIN]["names"] == ["initial", "triaged"]
        assert len(rows[MAIN]["sizes"]) == 8 and rows[MAIN]["sizes"][-1] == len(
            git(repo.path, "cat-file", "blob", f"agents/{MAIN}:state.json"))
        assert [a["agent_id"] for a in get_json(server, "/api/agents?q=retry")["agents"]] == [RETRY]
        assert [a["agent_id"] for a in get_json(server, "/api/agents?status=failed")["agents"]] == [SOLO]
        second = get_json(server, "/api/agents?offset=1&limit=1")
        assert second["total"] == 3 and [a["agent_id"] for a in second["agents"]] == [RETRY]
        assert request(server, "GET", "/api/agents?limit=x")[0] == 400
        repo.save({"agent_id": SOLO, "status": "running"})  # a head moves: its row follows
        repo.delete_agent(RETRY)
        rows = {a["agent_id"]: a for a in get_json(server, "/api/agents")["agents"]}
        assert sorted(rows) == [MAIN, SOLO]
        assert rows[SOLO]["count"] == 2 and rows[SOLO]["head"]["status"] == "running"


def test_timeline_values_markers_and_any_numeric_path(sample):
    repo, saved = sample
    with running(repo) as server:
        data = get_json(server, f"/api/agents/{MAIN}/timeline?path=task_context.missing&path=iteration")
    points = data["points"]
    assert [p["commit"] for p in points] == [c.commit for c in saved["main"]]
    assert [p["iteration"] for p in points] == [1, 2, 3, 4, 5, 4, 6, 7]
    assert [p["values"]["total_tokens"] for p in points] == [100, 400, 900, 1600, 2500, 1600, 3600, 4900]
    assert [p["values"]["messages"] for p in points] == [1, 2, 3, 4, 5, 4, 5, 6]
    assert all("task_context.missing" not in p["values"] for p in points)
    assert [p["values"]["iteration"] for p in points] == [p["iteration"] for p in points]
    assert [p["names"] for p in points][:3] == [["initial"], [], ["triaged"]]
    assert [bool(p["rollback_of"]) for p in points] == [False] * 5 + [True] + [False] * 2
    assert [p["status"] for p in points][-2:] == ["running", "completed"]
    retry = get_json_once(repo, f"/api/agents/{RETRY}/timeline")["points"]
    assert [p["forked_from_agent"] for p in retry] == [None] * 3 + [MAIN, None, None]


def get_json_once(repo, path):
    with running(repo) as server:
        return get_json(server, path)


def test_checkpoint_state_download_parent_and_child(sample):
    repo, saved = sample
    main = saved["main"]
    with running(repo) as server:
        data = get_json(server, f"/api/agents/{MAIN}/checkpoints/triaged")
        assert data["checkpoint"]["commit"] == main[2].commit
        assert data["parent"] == main[1].commit and data["child"] == main[3].commit
        assert data["state"] == repo.load(MAIN, "triaged", model=None)
        assert data["checkpoint"]["trailers"]["Checkpoint-Id"] == main[2].checkpoint_id
        by_sha = get_json(server, f"/api/agents/{MAIN}/checkpoints/{main[2].commit[:9]}")
        assert by_sha["checkpoint"] == data["checkpoint"]
        assert get_json(server, f"/api/agents/{MAIN}/checkpoints/latest")["child"] is None
        status, headers, body = request(server, "GET", f"/api/agents/{MAIN}/checkpoints/latest~2/state.json")
        assert status == 200 and "attachment" in headers["content-disposition"]
        assert body.decode() == git(repo.path, "show", f"agents/{MAIN}~2:state.json")
        assert request(server, "GET", f"/api/agents/{MAIN}/checkpoints/latest~99")[0] == 404
        assert request(server, "GET", "/api/agents/nobody/checkpoints/latest")[0] == 404
        assert request(server, "GET", "/api/agents/-bad/checkpoints/latest")[0] == 400


def test_diff_adjacent_by_default_between_agents_and_patch_download(sample):
    repo, saved = sample
    with running(repo) as server:
        adjacent = get_json(server, f"/api/diff?agent={MAIN}")
        assert adjacent["old"]["commit"] == saved["main"][-2].commit
        assert adjacent["new"]["commit"] == saved["main"][-1].commit
        old, new = (repo.read_state(c.commit) for c in saved["main"][-2:])
        assert apply_patch(old, adjacent["patch"]) == new
        assert [p["path"] for p in adjacent["paths"]] == [op["path"] for op in adjacent["patch"]]
        changed = {p["path"]: (p["old"], p["new"]) for p in adjacent["paths"]}
        assert changed["/status"] == ("running", "completed")
        assert changed["/total_tokens"] == (3600, 4900)
        across = get_json(server, f"/api/diff?agent={MAIN}&a=initial&b=latest&other={RETRY}")
        assert across["new"]["agent_id"] == RETRY and across["summary"].startswith("iteration 1→5")
        status, headers, body = request(server, "GET", f"/api/diff/patch.json?agent={MAIN}&a=initial")
        assert status == 200 and headers["content-type"] == "application/json-patch+json"
        assert apply_patch(repo.load(MAIN, "initial", model=None), json.loads(body)) == new
        assert request(server, "GET", "/api/diff")[0] == 400


def test_graph_shows_which_agent_forked_from_which_checkpoint(sample):
    repo, saved = sample
    with running(repo) as server:
        agents = {a["agent_id"]: a for a in get_json(server, "/api/graph")["agents"]}
    assert agents[RETRY]["from_agent"] == MAIN
    assert agents[RETRY]["from_commit"] == saved["main"][2].commit
    assert agents[RETRY]["from_checkpoint_id"] == saved["main"][2].checkpoint_id
    assert agents[MAIN]["from_agent"] is None and agents[SOLO]["from_agent"] is None


def test_no_endpoint_writes(sample):
    repo, _saved = sample
    before = snapshot(repo)
    with running(repo) as server:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            for path in ("/api/agents", f"/api/agents/{MAIN}", f"/api/agents/{MAIN}/checkpoints/latest", "/"):
                status, headers, _body = request(server, method, path, body=b'{"iteration": 99}')
                assert status == 405 and headers["allow"] == "GET, HEAD", (method, path)
        status, headers, body = request(server, "HEAD", "/api/agents")
        assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    assert snapshot(repo) == before


@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/app.py", "/static/..%2fapp.py",
    "/static/%2e%2e%2f%2e%2e%2fconfig", "/../../etc/passwd", "/static//etc/passwd",
    "/api/agents/..%2f..%2fconfig/checkpoints/latest/state.json",
    f"/api/agents/{MAIN}/checkpoints/..%2f..%2f..%2fconfig/state.json",
    f"/api/agents/{MAIN}/checkpoints/HEAD:config", "/api/agents/%2e%2e/timeline",
])
def test_no_path_outside_the_assets_or_the_repository_can_be_read(sample, path):
    repo, _saved = sample
    secrets = [Path(repo.path, "config").read_bytes(), Path("/etc/passwd").read_bytes()[:40],
               (ROOT / "gitstate" / "web" / "app.py").read_bytes()[:200]]
    with running(repo) as server:
        status, _headers, body = request(server, "GET", path)
    assert status in (400, 404), (path, status)
    assert not any(secret in body for secret in secrets)


def test_loopback_only_unless_allowed_and_then_a_token(sample, gitstate):
    repo, _saved = sample
    from gitstate.web import make_server

    for host in ("0.0.0.0", "192.0.2.1", "::", "example.com"):
        with pytest.raises(InvalidArgumentError, match="not a loopback address"):
            make_server(repo, host, 0)
    assert_gitstate_error(gitstate("--repo", repo.path, "serve", "--host", "0.0.0.0"), "--allow-remote")
    with running(repo, token=True) as server:
        token = server.token
        assert token and len(token) >= 32 and server.url.endswith(f"/?token={token}")
        assert request(server, "GET", "/api/agents")[0] == 403
        assert request(server, "GET", "/")[0] == 403
        assert request(server, "GET", "/api/agents?token=wrong")[0] == 403
        status, headers, _body = request(server, "GET", f"/?token={token}")
        assert status == 200 and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert request(server, "GET", "/api/agents", {"Cookie": cookie})[0] == 200
        assert request(server, "GET", "/api/agents", {"Cookie": "gitstate_token=nope"})[0] == 403
    with running(repo) as server:  # loopback, no token: other Host names are refused
        assert request(server, "GET", "/api/agents", {"Host": "attacker.example:80"})[0] == 421
        assert request(server, "GET", "/api/agents", {"Host": f"localhost:{server.server_address[1]}"})[0] == 200


def test_pages_and_assets_are_served_from_the_package_only(sample):
    repo, _saved = sample
    with running(repo) as server:
        for page in ("/", "/agents", f"/agent/{MAIN}", f"/checkpoint/{MAIN}/latest", "/diff", "/graph"):
            status, headers, body = request(server, "GET", page)
            assert status == 200 and headers["content-type"].startswith("text/html"), page
            assert "default-src 'self'" in headers["content-security-policy"]
        html = request(server, "GET", "/")[2].decode()
        for asset in ("/static/app.js", "/static/app.css", "/static/favicon.svg"):
            assert asset in html
            assert request(server, "GET", asset)[0] == 200
        assert "http" not in request(server, "GET", "/static/app.js")[2].decode().replace(
            'http://www.w3.org/2000/svg', "")  # no address elsewhere, but SVG's namespace name
        assert request(server, "GET", "/nowhere")[0] == 404


def test_the_wheel_ships_the_assets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("gitstate-*.whl"))
    listed = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "app.js", "app.css", "favicon.svg"):
        assert f"gitstate/web/static/{name}" in listed
    assert "gitstate/web/server.py" in listed


def test_serve_command_prints_its_url_serves_and_stops_on_ctrl_c(sample):
    repo, _saved = sample
    process = subprocess.Popen([str(EXECUTABLE), "--repo", repo.path, "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible)
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"Serving {repo.path} at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/agents", timeout=30) as response:
            assert json.loads(response.read())["total"] == 3
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0 and err == "", err
