"""The service's web page, driven in a real headless Chromium against a real server.

The page is served by the service itself (``acq.service._page``); Chromium is Debian's,
driven by Playwright (the ``browser`` fixture of ``tests/conftest.py``).
Every request the page makes that does not go to the loopback server is refused and
recorded: the page must need nothing from the network.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import count, fly, scan
from acq.service import ApiKey, Service, ServiceConfig, hash_api_key
from acq.service._auth import ALL_SCOPES
from playwright.async_api import Browser, Page, Route, WebSocketRoute
from support import DocChecker

pytestmark = pytest.mark.browser


WAIT_MS = 20_000  # the longest any single wait for the page may take
KEY = "page-key-0123456789abcdef"
OPERATOR = [ApiKey("operator", hash_api_key(KEY, iterations=1000), ALL_SCOPES, None)]


@pytest.fixture
async def bl() -> SimBeamline:
    """The simulated beamline, motors instant, detectors noisy (each value its own)."""
    return await sim_beamline(instant=True, noise="uniform", seed=17)


@pytest.fixture
def api_keys() -> list[ApiKey]:
    """No API keys: anonymous clients may do everything (a test may parametrize keys)."""
    return []


@pytest.fixture
def config(bl: SimBeamline, tmp_path: Path, api_keys: list[ApiKey]) -> ServiceConfig:
    """``count``, ``scan`` and ``fly`` on the sim beamline, guarded by ``api_keys``."""
    return ServiceConfig(
        devices=bl.by_name(),
        plans={"count": count, "scan": scan, "fly": fly},
        catalog=str(tmp_path / "catalog.db"),
        api_keys=api_keys,
    )


@pytest.fixture
async def page_url(service: Service, checker: DocChecker) -> AsyncIterator[str]:
    """The service, its page included, served on a free loopback port; documents checked."""
    service.RE.subscribe(checker, thread=False)
    async with service.serving("127.0.0.1", 0) as where:
        yield where


@pytest.fixture
async def page(browser: Browser, page_url: str) -> AsyncIterator[Page]:
    """A browser tab on the page; it may reach the server and nothing else."""
    tab = await browser.new_page(viewport={"width": 1280, "height": 900})
    refused: list[str] = []
    errors: list[str] = []

    async def offline(route: Route) -> None:
        if route.request.url.startswith((page_url, page_url.replace("http", "ws", 1))):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    await tab.route("**/*", offline)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    await tab.goto(page_url)
    yield tab
    await tab.close()
    assert refused == [], "the page asked the network for something"
    assert errors == [], "the page's script failed"


async def until(page: Page, script: str, arg: Any = None) -> Any:
    """Wait (bounded) until ``script`` is truthy in the page; its value."""
    handle = await page.wait_for_function(script, arg=arg, timeout=WAIT_MS, polling=50)
    return await handle.json_value()


async def add_item(page: Page, plan: str, args: str, kwargs: str) -> None:
    """Fill the page's form and press Add."""
    await page.select_option("#add-plan", plan)
    await page.fill("#add-args", args)
    await page.fill("#add-kwargs", kwargs)
    await page.click("#add-submit")


async def table(page: Page) -> tuple[list[str], list[list[str]]]:
    """The live table: its header and its rows, as the page shows them."""
    header, rows = await page.evaluate(
        """() => [
            [...document.querySelectorAll('#run-table th')].map(th => th.textContent),
            [...document.querySelectorAll('#run-table tbody tr')].map(
                tr => [...tr.cells].map(td => td.textContent)),
        ]"""
    )
    return header, rows


HISTORY = "document.querySelectorAll('#history-list li[data-exit-status=\"{}\"]').length"
ROWS = "document.querySelectorAll('#run-table tbody tr').length"
POINT_LIST = "document.querySelectorAll('#plot circle.point')"
POINTS = "Number(document.querySelector('#plot svg')?.dataset.points)"


async def test_a_count_added_and_started_on_the_page_completes_with_its_table_and_plot(
    page: Page, service: Service, tmp_path: Path
) -> None:
    await until(page, "document.querySelector('#add-plan option[value=count]')")
    await add_item(page, "count", '[["det"]]', '{"num": 7}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    assert 'count(["det"], num=7)' in await page.inner_text("#queue-list")
    await page.click("#queue-start")
    await until(page, f"{HISTORY.format('completed')} === 1 && {ROWS} === 7 && {POINTS} === 7")
    await until(page, "document.querySelector('#manager-state').textContent === 'idle'")

    catalog = service.RE.catalog
    assert catalog is not None
    stored = catalog[-1].primary.read()
    header, rows = await table(page)
    assert header == ["seq_num", "det"]
    assert [int(r[0]) for r in rows] == list(range(1, 8))
    assert [float(r[1]) for r in rows] == [float(v) for v in stored["det"]]
    assert len({r[1] for r in rows}) == 7  # noisy: a mixed-up row would show
    assert await page.get_attribute("#plot svg", "data-y") == "det"
    assert await page.evaluate(f"{POINT_LIST}.length") == 7
    assert await page.get_attribute("#plot svg", "data-x") == "seq_num"
    assert await page.get_attribute("#run", "data-exit-status") == "success"
    assert await page.inner_text("#items-in-history") == "1"
    assert await page.inner_text("#link") == "live"  # the status came by WebSocket
    await page.screenshot(path=tmp_path / "page.png", full_page=True)

    await page.reload()  # a page opened later shows the last finished run, from the catalog
    await until(page, f"{ROWS} === 7 && {POINTS} === 7")
    assert await table(page) == (header, rows)
    assert await page.get_attribute("#run", "data-exit-status") == "success"


async def test_a_scan_plots_its_detector_against_its_motor(page: Page, service: Service) -> None:
    await until(page, "document.querySelector('#add-plan option[value=scan]')")
    await add_item(page, "scan", '[["det"], "x", -1, 1]', '{"num": 5}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    await page.click("#queue-start")
    await until(page, f"{HISTORY.format('completed')} === 1 && {ROWS} === 5 && {POINTS} === 5")
    header, rows = await table(page)
    assert header[0] == "seq_num"
    assert "det" in header
    motor = await page.get_attribute("#plot svg", "data-x")
    assert motor in header
    assert motor != "seq_num"
    assert [float(r[header.index(motor)]) for r in rows] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    xs = await page.evaluate(f"[...{POINT_LIST}].map(c => Number(c.getAttribute('cx')))")
    assert xs == sorted(xs)
    assert xs[0] < xs[-1]


async def test_a_fly_scan_shows_its_event_pages_row_by_row(page: Page, service: Service) -> None:
    await until(page, "document.querySelector('#add-plan option[value=fly]')")
    await add_item(page, "fly", '[["flyer"]]', "{}")
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    await page.click("#queue-start")
    await until(page, f"{HISTORY.format('completed')} === 1")
    catalog = service.RE.catalog
    assert catalog is not None
    stored = catalog[-1].flyer.read()
    num = len(stored["flyer-intensity"])
    assert num > 1
    await until(page, f"{ROWS} === {num} && {POINTS} === {num}")
    assert await page.get_attribute("#run", "data-stream") == "flyer"
    assert await page.get_attribute("#plot svg", "data-y") == "flyer-intensity"
    header, rows = await table(page)
    column = header.index("flyer-intensity")
    assert [float(r[column]) for r in rows] == [float(v) for v in stored["flyer-intensity"]]


async def test_pause_resume_and_abort_from_the_page_end_the_run_aborted(
    page: Page, service: Service
) -> None:
    await until(page, "document.querySelector('#add-plan option[value=count]')")
    await add_item(page, "count", '[["det"]]', '{"num": 400, "delay": 0.02}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    await page.click("#queue-start")
    await until(page, f"{ROWS} >= 2 && document.body.dataset.engine === 'running'")

    await page.click("#re-pause")
    await until(page, "document.body.dataset.manager === 'paused'")
    assert service.RE.state.value == "paused"
    assert "Pause: done" in await page.inner_text("#message")
    rows_paused = await page.evaluate(ROWS)

    await page.click("#re-resume")
    await until(page, f"{ROWS} > {rows_paused} && document.body.dataset.engine === 'running'")
    await page.click("#re-pause")
    await until(page, "document.body.dataset.manager === 'paused'")
    await page.click("#re-abort")
    await until(page, f"{HISTORY.format('aborted')} === 1")
    await until(page, "document.querySelector('#run').dataset.exitStatus === 'abort'")
    assert await page.evaluate(ROWS) < 400


async def test_a_bad_item_is_refused_and_the_page_shows_why(page: Page, service: Service) -> None:
    await until(page, "document.querySelector('#add-plan option[value=count]')")
    await add_item(page, "count", '[["nope"]]', "{}")
    message = await until(page, "document.querySelector('#message.error')?.textContent")
    assert message.startswith("add: 422: ")
    assert "nope" in message
    await add_item(page, "count", '[["det"]', "{}")  # not JSON: refused before sending
    await until(
        page, "document.querySelector('#message').textContent.startsWith('args: not valid JSON')"
    )
    await page.click("#re-resume")  # nothing is paused: success false, its reason shown
    await until(page, "document.querySelector('#message').textContent.includes('cannot resume')")
    assert await page.inner_text("#queue-list") == ""


async def test_the_remove_button_takes_an_item_out_of_the_queue(page: Page) -> None:
    await until(page, "document.querySelector('#add-plan option[value=count]')")
    await add_item(page, "count", '[["det"]]', '{"num": 1}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    await add_item(page, "count", '[["det"]]', '{"num": 2}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 2")
    await page.click("#queue-list li:first-child button.remove")
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    assert "num=2" in await page.inner_text("#queue-list")


@pytest.mark.parametrize("api_keys", [OPERATOR])
async def test_with_api_keys_the_page_asks_for_one_and_works_with_it(
    page: Page, service: Service
) -> None:
    await until(page, "!document.querySelector('#login').hidden")
    assert await page.is_hidden("#main")
    await page.fill("#api-key", "wrong-key-0123456789")
    await page.click("#key-use")
    await until(page, "document.querySelector('#login-msg').textContent.includes('refused')")
    await page.fill("#api-key", KEY)
    await page.click("#key-use")
    await until(page, "document.querySelector('#add-plan option[value=count]')")
    assert await page.evaluate("sessionStorage.getItem('acq-api-key')") == KEY
    await add_item(page, "count", '[["det"]]', '{"num": 3}')
    await until(page, "document.querySelectorAll('#queue-list li').length === 1")
    await page.click("#queue-start")
    await until(page, f"{HISTORY.format('completed')} === 1 && {ROWS} === 3 && {POINTS} === 3")
    assert await page.inner_text("#link") == "live"  # the sockets took the key too
    (done,) = await service.store.history()
    assert done["user"] == "operator"

    await page.reload()  # the key is kept for the tab's session
    await until(page, "document.querySelector('#items-in-history').textContent === '1'")
    assert await page.is_hidden("#login")


async def test_without_websockets_the_page_polls_the_status(
    browser: Browser, page_url: str
) -> None:
    tab = await browser.new_page()
    refused: list[str] = []

    async def closed(ws: WebSocketRoute) -> None:
        refused.append(ws.url)
        await ws.close(code=1011, reason="no sockets in this test")

    await tab.route_web_socket("**/api/v1/ws/**", closed)
    await tab.goto(page_url)
    await until(tab, "document.querySelector('#link').textContent === 'polling'")
    await add_item(tab, "count", '[["det"]]', '{"num": 2}')
    await tab.click("#queue-start")
    await until(tab, f"{HISTORY.format('completed')} === 1")
    assert await tab.inner_text("#items-in-history") == "1"
    assert any(url.endswith("/api/v1/ws/status") for url in refused)
    await tab.close()


@pytest.mark.parametrize("api_keys", [OPERATOR])
async def test_the_page_needs_no_credential_and_serves_only_its_own_files(page_url: str) -> None:
    async with httpx.AsyncClient(base_url=page_url) as client:
        page = await client.get("/")
        script = await client.get("/static/app.js")
        status = await client.get("/api/status")
        missing = [
            (await client.get(path)).status_code
            for path in ("/static/nope.js", "/static/_page.py", "/static/..%2F_page.py")
        ]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing == [404, 404, 404]
    assert status.status_code == 401  # the data the page shows needs the key


def test_the_page_files_are_package_data() -> None:
    root = Path(__file__).resolve().parents[2]
    with (root / "pyproject.toml").open("rb") as file:
        package_data = tomllib.load(file)["tool"]["setuptools"]["package-data"]
    assert "_web/*" in package_data["acq.service"]  # else a wheel has no page
    names = {p.name for p in (root / "service" / "_web").iterdir()}
    assert {"index.html", "app.js", "app.css"} <= names
