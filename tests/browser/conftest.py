from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(autouse=True)
def _roles(transactional_db):
    """Browser tests run on a flushed database (the live server needs committed data): put
    the role groups the migrations created back."""
    from loyalty.roles import roles_sync

    roles_sync()


@pytest.fixture
def browser_page(monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (.ci/run installs it)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    # Playwright's sync API runs an event loop; let Django's ORM work from this test thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        yield page
        browser.close()
        # While Playwright's loop runs in this thread, asgiref gives the ORM a connection
        # of the loop's own (the thread counts as async): the test's queries ran on it and
        # pytest-django never sees it. Close it here, or it outlives the test and keeps the
        # test database from being dropped at the end of the run.
        connections.close_all()
