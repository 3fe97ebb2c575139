"""The UI and the paper broker listen on 127.0.0.1 unless told otherwise.

The Dagster UI has no login and can launch any job, live trading among them; the paper broker's
admin endpoints move its clock. Both must be unreachable from other machines by default. The UI
is started the way users start it (`make ui`, so a change to the Makefile is what is tested) on
a free port and a throw-away DAGSTER_HOME; the listening socket is read from the kernel
(/proc/net/tcp{,6}) and a connection to the machine's own non-loopback address must fail.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from resources.paper_broker import PaperBroker
from trading_assets.embedded_postgres import EmbeddedPostgres

REPO = Path(__file__).resolve().parents[2]
LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex)
LISTEN = "0A"
# `-o .venv/.installed`: never re-sync the shared venv from a test, whatever the lock's mtime.
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The local addresses of every socket listening on `port`, as the kernel lists them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it (read from /proc)."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (proc / "stat").read_text()
                parents[int(proc.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def tree_listeners(root: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening in `root`'s process tree: the UI's
    webserver, daemon and code servers alike."""
    inodes: set[str] = set()
    for pid in process_tree(root):
        proc = Path("/proc") / str(pid)
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # the process ended meanwhile
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and fields[9] in inodes:
                address, hex_port = fields[1].rsplit(":", 1)
                found.add((address, int(hex_port, 16)))
    return found


def non_loopback_address() -> str | None:
    """This machine's own IPv4 address on a real interface (none on an isolated box)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    candidates = [a for a in out.split() if "." in a and not a.startswith("127.")]
    return candidates[0] if candidates else None


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


def wait_for(url: str, proc: subprocess.Popen, timeout_s: float) -> requests.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode} before answering"
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered on {url} within {timeout_s:g} s")


def stop_tree(proc: subprocess.Popen) -> None:
    """Whatever is left of the UI's processes, killed (a test that failed midway)."""
    for pid in process_tree(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    env.pop("UI_HOST", None)  # the default is what is tested
    env.pop("MAKEFLAGS", None)
    log = (tmp_path / "ui.log").open("wb")
    proc = subprocess.Popen(
        [*MAKE, "ui", f"UI_PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so every child is stopped with it
    )
    try:
        yield port, proc
    finally:
        stop_tree(proc)
        EmbeddedPostgres.of_home(tmp_path / "home").stop()  # a test that failed midway
        log.close()


def test_the_makefile_defaults_to_loopback_and_is_told_otherwise_by_variables() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(
            [*MAKE, "-n", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout

    for target in ("ui", "ui-postgres"):
        assert 'trading_assets.ui --host "127.0.0.1" --port "3000"' in dry_run(target)
        told = dry_run(target, "UI_HOST=0.0.0.0", "UI_PORT=3999")
        assert 'trading_assets.ui --host "0.0.0.0" --port "3999"' in told


def test_make_ui_listens_on_loopback_only_and_stops_on_ctrl_c(
    ui: tuple[int, subprocess.Popen], tmp_path: Path
) -> None:
    """Only 127.0.0.1 answers; then the terminal's Ctrl-C (SIGINT to the foreground group: make
    and the launcher) ends the webserver, the daemon and the code servers within seconds, and
    the instance it made has the community pop-up and telemetry off."""
    port, proc = ui
    answer = wait_for(f"http://127.0.0.1:{port}/server_info", proc, timeout_s=180)
    assert answer.status_code == 200 and "dagster_webserver_version" in answer.json()
    assert listening_addresses(port) == {LOOPBACK_V4}
    listeners = tree_listeners(proc.pid)
    assert (LOOPBACK_V4, port) in listeners
    assert {a for a, _ in listeners} == {LOOPBACK_V4}, f"a UI process listens beyond: {listeners}"
    address = non_loopback_address()
    if address is not None:  # an isolated box has no other address to try the UI from
        assert refused(address, port), f"the UI answered on {address}:{port}"

    started = process_tree(proc.pid)
    assert len(started) >= 4  # make, the launcher, dagster dev, its webserver and daemon
    server = EmbeddedPostgres.of_home(tmp_path / "home").pid()
    assert server is not None  # the instance's own PostgreSQL (its own session, not in the tree)
    started.add(server)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(started):
        time.sleep(0.2)
    assert not _alive(started), f"still running after Ctrl-C: {_alive(started)}"
    config = (tmp_path / "home" / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in config and "nux:\n  enabled: false" in config


def _alive(pids: set[int]) -> set[int]:
    """The pids still running (zombies count as gone)."""
    alive = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                alive.add(pid)
    return alive


def test_a_ui_that_ignores_ctrl_c_is_killed_after_the_grace_period() -> None:
    """What stops `make ui` when the webserver is busy and ignores SIGINT and SIGTERM."""
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(600)'])\n"
        "time.sleep(600)\n"
    )
    launcher = (
        "import sys; from trading_assets.ui import run_until_stopped; "
        f"sys.exit(run_until_stopped([sys.executable, '-c', {stubborn!r}], grace_s=2))"
    )
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=REPO, start_new_session=True)
    time.sleep(3)  # the stubborn child and its own child are up
    tree = process_tree(proc.pid)
    assert len(tree) == 3
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - started < 6
    time.sleep(0.5)
    assert not _alive(tree - {proc.pid})


def test_the_paper_broker_cli_listens_on_loopback_only(tmp_path: Path) -> None:
    """`python -m resources.paper_broker` (what `make paper-broker` runs) without --host."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "resources.paper_broker", "--db", str(tmp_path / "p.sqlite"),
         "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        answer = wait_for(f"http://127.0.0.1:{port}/v2/clock", proc, timeout_s=60)
        assert answer.status_code == 401  # it is up, and refuses requests without keys
        assert listening_addresses(port) == {LOOPBACK_V4}
        address = non_loopback_address()
        if address is not None:
            assert refused(address, port), f"the paper broker answered on {address}:{port}"
    finally:
        stop_tree(proc)


def test_the_embedded_paper_broker_listens_on_loopback_only(tmp_path: Path) -> None:
    with PaperBroker(tmp_path / "p.sqlite") as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        assert broker.url.startswith("http://127.0.0.1:")
        assert listening_addresses(port) == {LOOPBACK_V4}
        address = non_loopback_address()
        if address is not None:
            assert refused(address, port)
