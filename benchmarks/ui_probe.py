"""Open the Dagster UI's pages in a real headless Chromium and time them (ui_pages.py, tests).

A page is complete when its own content is on screen and no GraphQL query has been pending for
`QUIET_S`: the UI fetches a page's live data (statuses, checks, step stats) in queries that
start after the first paint, so "the HTML arrived" is not what a user waits for. Chromium is
Debian's (`/usr/bin/chromium`, or `CHROMIUM`), driven by Playwright (no browser download).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trading_assets.embedded_postgres import EmbeddedPostgres
from trading_assets.instance import project_home

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUIET_S = 1.0  # no GraphQL query pending for this long: the page has its data
VIEWPORT = {"width": 1600, "height": 1000}


def chromium_path() -> str | None:
    """Debian's Chromium (or CHROMIUM), None when it is not installed."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    return path if path and Path(path).exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_copy(home: Path) -> Iterator[Path]:
    """A copy of the instance folder `home`, removed afterwards (the UI writes caches to it);
    an embedded PostgreSQL instance is copied stopped (`cp -a`: its files keep their owner) and
    the copy's own server runs while the copy is used."""
    if not (home / "history").exists() and not (home / "dagster.yaml").exists():
        raise SystemExit(f"{home} holds no Dagster instance: run `make demo` first")
    if EmbeddedPostgres.of_home(home).pid() is not None:
        raise SystemExit(f"{home}'s PostgreSQL is running: stop `make ui` (or the demo) first")
    with tempfile.TemporaryDirectory(prefix="ui-pages-") as tmp:
        copy = Path(tmp) / "home"
        subprocess.run(["cp", "-a", str(home), str(copy)], check=True)
        for stale in (*copy.glob("*.lock"), copy / "postgres.holders"):
            stale.unlink(missing_ok=True)
        with project_home(copy):
            yield copy


class UiServer:
    """`dagster-webserver` on `home` with the repository's workspace, in its own process group
    (stopped by PID with everything it started, also when the benchmark is interrupted)."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, timeout_s: float = 180.0):
        self.home, self.env, self.timeout_s = home, env or {}, timeout_s
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self.log = home.parent / "webserver.log"

    def __enter__(self) -> UiServer:
        webserver = Path(sys.executable).parent / "dagster-webserver"
        env = {**os.environ, "DAGSTER_HOME": str(self.home), **self.env}
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(webserver), "-h", "127.0.0.1", "-p", str(self.port), "-w", "workspace.yaml"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_loaded()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def _wait_until_loaded(self) -> None:
        """Until the code location has loaded (the webserver answers before it has)."""
        deadline = time.monotonic() + self.timeout_s
        query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"webserver exited: see {self.log}")
            try:
                data = self.graphql(query)
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"webserver not ready in {self.timeout_s:.0f} s: see {self.log}")

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Page:
    """A page a user opens: its path (or a function of the server giving it), the text that
    shows its content has arrived, and an optional action after loading (open a dialog)."""

    path: str | Callable[[UiServer], str]
    expect: str
    action: Callable[[Any], None] | None = None
    expect_after: str = ""  # what the action brings on screen


def latest_run_id(server: UiServer, job: str) -> str:
    data = server.graphql(
        "query($f: RunsFilter) { runsOrError(filter: $f, limit: 1) "
        "{ ... on Runs { results { runId } } } }",
        {"f": {"pipelineName": job, "statuses": ["SUCCESS"]}},
    )
    results = data["runsOrError"]["results"]
    if not results:
        raise LookupError(f"no successful {job} run in this instance")
    return results[0]["runId"]


def _open_backfill_dialog(page: Any) -> None:
    page.get_by_role("button", name="Materialize", exact=False).first.click()


def _expand_groups(page: Any) -> None:
    """Expand every group of the global lineage: the graph's own shortcut (its settings menu
    says "Expand all groups", Alt+E)."""
    page.keyboard.press("Alt+e")


PAGES: dict[str, Page] = {
    "global_lineage_expanded": Page(
        "/asset-groups", "ingest", _expand_groups, expect_after="technical_analysis"
    ),
    "catalog": Page("/assets", "backtest_performance"),
    "overview_timeline": Page("/overview/activity/timeline", "execute_signals"),
    **{
        f"{asset}_{view}": Page(f"/assets/{asset}?view={view}", asset)
        for asset in ("bars", "debate", "trade_signals", "backtest_performance")
        for view in ("overview", "partitions", "checks", "events")
        if not (asset == "backtest_performance" and view == "partitions")
    },
    "backtest_run": Page(lambda s: f"/runs/{latest_run_id(s, 'backtest_job')}", "backtest_job"),
    "bars_backfill_dialog": Page(
        "/assets/bars?view=partitions", "bars", _open_backfill_dialog, expect_after="Launch"
    ),
    "automation": Page("/automation", "intraday_schedule"),
}


@dataclass
class PageResult:
    name: str
    seconds: float
    complete: bool
    queries: int
    slowest: tuple[str, float] | None
    reason: str = ""
    pending: list[str] = field(default_factory=list)
    community_popup: bool = False
    text: str = ""  # what the page shows once complete (its body's text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 2),
            "complete": self.complete,
            "queries": self.queries,
            "slowest": list(self.slowest) if self.slowest else None,
            "reason": self.reason,
            "community_popup": self.community_popup,
        }


class _Queries:
    """GraphQL requests of one page: which are pending, how long each took."""

    def __init__(self) -> None:
        self.started: dict[Any, tuple[str, float]] = {}
        self.durations: list[tuple[str, float]] = []
        self.last_change = time.monotonic()

    @staticmethod
    def _name(request: Any) -> str:
        url = request.url
        if "op=" in url:
            return url.split("op=", 1)[1].split("&", 1)[0]
        try:
            return json.loads(request.post_data or "{}").get("operationName") or "graphql"
        except (ValueError, AttributeError):
            return "graphql"

    def on_request(self, request: Any) -> None:
        if "/graphql" in request.url:
            self.started[request] = (self._name(request), time.monotonic())
            self.last_change = time.monotonic()

    def on_done(self, request: Any) -> None:
        if request in self.started:
            name, t0 = self.started.pop(request)
            self.durations.append((name, time.monotonic() - t0))
            self.last_change = time.monotonic()

    def quiet_for(self) -> float:
        return 0.0 if self.started else time.monotonic() - self.last_change


def open_page(
    browser_page: Any, server: UiServer, name: str, page: Page, timeout_s: float
) -> PageResult:
    """Open one page in a fresh tab state and wait for its content and its queries."""
    queries = _Queries()
    browser_page.on("request", queries.on_request)
    browser_page.on("requestfinished", queries.on_done)
    browser_page.on("requestfailed", queries.on_done)
    path = page.path(server) if callable(page.path) else page.path
    started = time.monotonic()
    deadline = started + timeout_s
    reason = ""
    popup = {"shown": False}

    def close_popup() -> None:  # Dagster's "Join the community" dialog covers the page
        popup["shown"] = True
        browser_page.get_by_role("button", name="Skip").click()

    browser_page.add_locator_handler(
        browser_page.get_by_text("Join the Dagster community"), close_popup
    )
    try:
        browser_page.goto(server.url + path, wait_until="domcontentloaded", timeout=timeout_s * 1e3)
        browser_page.get_by_text(page.expect, exact=False).first.wait_for(
            timeout=max(1.0, deadline - time.monotonic()) * 1e3
        )
        if page.action:
            page.action(browser_page)
            browser_page.get_by_text(page.expect_after, exact=False).first.wait_for(
                timeout=max(1.0, deadline - time.monotonic()) * 1e3
            )
        while queries.quiet_for() < QUIET_S and time.monotonic() < deadline:
            browser_page.wait_for_timeout(100)
        complete = queries.quiet_for() >= QUIET_S
        if not complete:
            reason = "queries pending: " + ", ".join(n for n, _ in queries.started.values())
    except Exception as exc:  # a timeout or a missing element: report it, go on
        complete, reason = False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    seconds = time.monotonic() - started - (QUIET_S if reason == "" else 0.0)
    try:
        text = browser_page.inner_text("body", timeout=5e3)
    except Exception:  # a page that never rendered: nothing to read
        text = ""
    pending = [n for n, _ in queries.started.values()]
    for event, handler in (
        ("request", queries.on_request),
        ("requestfinished", queries.on_done),
        ("requestfailed", queries.on_done),
    ):
        browser_page.remove_listener(event, handler)
    slowest = max(queries.durations, key=lambda d: d[1], default=None)
    if pending:
        oldest = min(t0 for _, t0 in queries.started.values())
        slowest = (pending[0], time.monotonic() - oldest)
    return PageResult(
        name,
        seconds,
        complete,
        len(queries.durations) + len(pending),
        slowest,
        reason,
        pending,
        popup["shown"],
        text,
    )


def _screenshot(tab: Any, result: PageResult, path: Path) -> None:
    """A screenshot of the page as it is (a page still busy may refuse one: noted, not fatal)."""
    try:
        if tab.get_by_text("Join the Dagster community").count():
            result.community_popup = True
            tab.get_by_role("button", name="Skip").click()
        tab.screenshot(path=str(path), timeout=10e3)
    except Exception as exc:
        result.reason = (result.reason + f"; no screenshot: {type(exc).__name__}").lstrip("; ")


def _leave(tab: Any) -> None:
    """Close a tab; one whose page never loaded is first sent to about:blank (closing it
    directly can wait forever on its pending navigation)."""
    try:
        tab.goto("about:blank", timeout=5e3)
        tab.close()
    except Exception:  # left open: the browser goes at the end
        pass


def open_pages(
    server: UiServer,
    names: list[str],
    timeout_s: float = 60.0,
    shots: Path | None = None,
    report: Callable[[PageResult], None] | None = None,
) -> list[PageResult]:
    """Open `names` in order, each in a new tab of one browser (as a user clicking through)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            for name in names:
                tab = context.new_page()
                result = open_page(tab, server, name, PAGES[name], timeout_s)
                results.append(result)
                if report:
                    report(result)
                if shots:
                    _screenshot(tab, result, shots / f"{name}.png")
                    (shots / f"{name}.txt").write_text(result.text)
                _leave(tab)  # abandons its pending queries (the webserver may go on computing)
        finally:
            browser.close()
    return results
