"""The web view's pages in a real headless Chromium (the system's, driven by Playwright).

Every request the pages make is recorded: none may leave the server. Screenshots of
each page are written to ``screenshots/`` in ``$GITSTATE_TEST_ARTIFACTS`` (default:
``gitstate-test-artifacts`` in the temporary folder, e.g. ``/tmp``). ``.ci/run`` installs Chromium where it is missing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from gitstate import StateRepository

from web_helpers import MAIN, RETRY, SOLO, running, sample_repository


def chromium() -> str:
    """The Chromium to drive: ``$GITSTATE_CHROMIUM``, else the first one on PATH."""
    found = os.environ.get("GITSTATE_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    assert found, "no Chromium: install Debian's chromium package (.ci/run does) or set GITSTATE_CHROMIUM"
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sample repository served on 127.0.0.1, and a browser page recording its requests."""
    repo = StateRepository.init(tmp_path_factory.mktemp("web") / "state.git")
    repo.configure_maintenance(auto_objects=0)
    saved = sample_repository(repo)
    artifacts = Path(os.environ.get("GITSTATE_TEST_ARTIFACTS")
                     or Path(tempfile.gettempdir(), "gitstate-test-artifacts")) / "screenshots"
    artifacts.mkdir(parents=True, exist_ok=True)
    with running(repo) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        requested: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        base = server.url.rstrip("/")
        yield {"repo": repo, "saved": saved, "page": page, "base": base, "requested": requested,
               "errors": errors, "artifacts": artifacts}
        browser.close()
    outside = [url for url in requested if not url.startswith(base + "/")]
    assert not outside, f"the pages fetched from outside the server: {outside}"
    assert not errors, errors


def visit(site: dict[str, Any], path: str) -> Page:
    page: Page = site["page"]
    page.goto(site["base"] + path)
    page.wait_for_selector("body[data-ready=yes]")
    return page


def settled(page: Page) -> None:
    """Wait for the view a navigation started (``route()`` marks the body when done)."""
    page.wait_for_selector("body[data-ready=yes]")


def test_agents_page_lists_the_agents_and_their_counts(site):
    page = visit(site, "/agents")
    rows = page.locator("#agents tbody tr")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.agent)") == [MAIN, RETRY, SOLO]
    assert page.locator("#agents td.count").all_inner_texts() == ["8", "6", "1"]
    assert page.locator("#agents svg.spark").count() == 3
    page.screenshot(path=str(site["artifacts"] / "agents.png"))
    page.fill("#filter", "retry")
    page.wait_for_url("**/agents?q=retry")  # the page sets data-ready=no as the URL changes
    settled(page)
    assert page.locator("#agents tbody tr").get_attribute("data-agent") == RETRY
    page.locator(f"#agents a:text-is('{RETRY}')").click()
    page.wait_for_url(f"**/agent/{RETRY}")
    settled(page)
    assert page.locator("#timeline circle.pt").count() == 6
    assert page.locator("#timeline circle.pt.fork").count() == 1


def test_timeline_plots_every_checkpoint_and_a_click_opens_it(site):
    main = site["saved"]["main"]
    page = visit(site, f"/agent/{MAIN}")
    points = page.locator("#timeline circle.pt")
    assert points.count() == 8
    assert points.evaluate_all("ps => ps.map(p => Number(p.dataset.value))") == [1, 2, 3, 4, 5, 4, 6, 7]
    assert points.evaluate_all("ps => ps.map(p => p.dataset.commit)") == [c.commit for c in main]
    assert page.locator("#timeline circle.pt.rollback").count() == 1
    assert page.locator("#timeline .name-label").all_text_contents() == ["initial", "triaged"]
    page.screenshot(path=str(site["artifacts"] / "timeline.png"))
    page.select_option("#metric", "total_tokens")
    page.wait_for_url("**metric=total_tokens")
    settled(page)
    assert page.locator("#timeline circle.pt").evaluate_all("ps => ps.map(p => Number(p.dataset.value))") == [
        100, 400, 900, 1600, 2500, 1600, 3600, 4900]
    third = page.locator("#timeline circle.pt").nth(2)
    third.hover()
    assert main[2].commit[:7] in page.inner_text("#hoverinfo") and "triaged" in page.inner_text("#hoverinfo")
    third.click()
    page.wait_for_url(f"**/checkpoint/{MAIN}/{main[2].commit}")
    settled(page)
    assert page.inner_text("#commit") == main[2].commit


def test_checkpoint_tree_and_diff_show_exactly_the_changed_paths(site):
    repo, main = site["repo"], site["saved"]["main"]
    page = visit(site, f"/checkpoint/{MAIN}/triaged")
    assert page.inner_text("#commit") == main[2].commit
    assert page.locator("#tree .leaf[data-path='total_tokens']").inner_text().startswith("total_tokens: 900")
    page.locator("#tree details[data-path='messages'] > summary").click()
    page.locator("#tree details[data-path='messages[2]'] > summary").click()
    assert page.locator("#tree .leaf[data-path='messages[2].content']").inner_text().startswith(
        'content: "step 3"')
    assert page.get_attribute("#download", "href").endswith(f"/checkpoints/{main[2].commit}/state.json")
    page.screenshot(path=str(site["artifacts"] / "checkpoint.png"), full_page=True)
    page.click("#parent")
    page.wait_for_url(f"**/checkpoint/{MAIN}/{main[1].commit}")
    settled(page)

    page = visit(site, f"/diff?agent={MAIN}&a=initial&b=latest")
    expected = [op["path"] for op in repo.diff(MAIN, "initial", "latest").patch]
    shown = page.locator("#changes tbody tr").evaluate_all("rows => rows.map(r => r.dataset.path)")
    assert shown == expected and "/total_tokens" in shown
    assert page.inner_text("#summary") == repo.diff(MAIN, "initial", "latest").summary
    assert "/api/diff/patch.json?" in page.get_attribute("#patch", "href")
    page.screenshot(path=str(site["artifacts"] / "diff.png"))
    page = visit(site, "/graph")
    assert page.locator("#graph a[data-agent]").evaluate_all("as => as.map(a => a.dataset.agent)") == [
        MAIN, RETRY, SOLO]
    assert page.locator("#graph path.edge").count() == 1
    page.screenshot(path=str(site["artifacts"] / "graph.png"))
