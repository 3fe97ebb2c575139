"""`make ui`: Dagster's UI and daemon (`dagster dev`) on the project's instance, stoppable.

`dagster dev` hands Ctrl-C to the webserver, which then waits for the requests it is serving;
one busy in a long computation kept the whole UI up for minutes, SIGTERM too. Here `dagster
dev` runs in its own process group: Ctrl-C (or SIGTERM) asks it to stop, and after `GRACE_S`
seconds, or at a second Ctrl-C, the whole group is killed. The instance folder is prepared first
and its embedded server, if any, held until the UI has stopped (`trading_assets.instance`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trading_assets.instance import project_home

GRACE_S = 5.0


def run_until_stopped(command: Sequence[str], grace_s: float = GRACE_S) -> int:
    """Run `command` in its own process group until it exits or this process is asked to stop
    (SIGINT, SIGTERM): then SIGINT to the group, and SIGKILL to it `grace_s` later (or at a
    second signal). Whatever the command left in its group is killed on the way out."""
    child = subprocess.Popen(list(command), start_new_session=True)
    asked: list[float] = []

    def stop(_signum: int, _frame: object) -> None:
        if asked:  # asked twice: no more waiting
            _kill_group(child.pid)
            return
        asked.append(time.monotonic())
        print(f"\nstopping (at most {grace_s:.0f} s) ...", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGINT)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while child.poll() is None:
            if asked and time.monotonic() - asked[0] > grace_s:
                _kill_group(child.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.2)
    finally:
        _kill_group(child.pid)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if asked else child.returncode


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("UI_HOST", "127.0.0.1"))
    parser.add_argument("--port", default=os.environ.get("UI_PORT", "3000"))
    args = parser.parse_args(argv)
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    with project_home() as home:  # the embedded server, if any, stops after the UI
        ui = f"http://{args.host}:{args.port}"
        print(f"instance {home}; UI on {ui} (Ctrl-C stops it)", flush=True)
        return run_until_stopped([dagster, "dev", "-h", args.host, "-p", str(args.port)])


if __name__ == "__main__":
    sys.exit(main())
