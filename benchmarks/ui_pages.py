"""Seconds per UI page, as a user opens them: a real webserver, a real headless browser.

Copies an instance (default: the `make demo` one in ./.dagster_home) to a throw-away folder,
starts `dagster-webserver` on it with this repository's workspace (the code location in its own
gRPC process, as `make ui` does), then opens each page in Debian's Chromium through Playwright
and prints how long until the page shows its content and no GraphQL query is pending. The
webserver is cold: a fresh process on a fresh copy (Dagster persists some caches in the
instance, so the copy keeps runs of this script from warming each other).

    .venv/bin/python benchmarks/ui_pages.py                       # the demo's instance
    .venv/bin/python benchmarks/ui_pages.py --env TRADING_PARTITIONS_START=2025-01-01 \
        --env TRADING_PARTITIONS_END=2026-04-01                   # a year of minutes defined
    .venv/bin/python benchmarks/ui_pages.py --pages catalog,bars_checks --shots /tmp/shots

A page that is not complete within --timeout seconds is printed as such, with the queries
still pending. Needs Chromium (`apt-get install chromium`) and the `playwright` package.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ui_probe import (  # noqa: E402
    PAGES,
    PageResult,
    UiServer,
    open_pages,
    throwaway_copy,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("DAGSTER_HOME", REPO / ".dagster_home"))
    parser.add_argument("--pages", default="", help="comma-separated page names (all)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per page (60)")
    parser.add_argument("--shots", default="", help="folder for a screenshot of every page")
    parser.add_argument("--env", action="append", default=[], help="K=V for the code location")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args(argv)

    names = [n for n in args.pages.split(",") if n] or list(PAGES)
    unknown = sorted(set(names) - set(PAGES))
    if unknown:
        parser.error(f"unknown pages {unknown}; known: {', '.join(PAGES)}")
    env = dict(item.split("=", 1) for item in args.env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the webserver on the way out
    with throwaway_copy(Path(args.home)) as home, UiServer(home, env=env) as server:
        print(f"webserver up in {server.startup_s:.1f} s on {server.url} (instance copy {home})")
        print(f"\n{'page':<34} {'seconds':>8}  queries  slowest query", flush=True)

        def report(r: PageResult) -> None:
            seconds = f"{r.seconds:8.1f}" if r.complete else f">{args.timeout:7.0f}"
            slowest = f"{r.slowest[0]} {r.slowest[1]:.1f} s" if r.slowest else ""
            print(f"{r.name:<34} {seconds}  {r.queries:>7}  {slowest}", flush=True)
            if not r.complete:
                print(f"{'':<34} incomplete: {r.reason}", flush=True)

        shots = Path(args.shots) if args.shots else None
        results = open_pages(server, names, args.timeout, shots, report)
    popups = [r.name for r in results if r.community_popup]
    print(f"community pop-up: {'shown on ' + ', '.join(popups) if popups else 'not shown'}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.as_dict() for r in results], indent=2))
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
