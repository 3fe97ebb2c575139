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


def group_listeners(pgid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening in any process of the group: the UI's
    webserver, daemon and code servers alike."""
    inodes: set[str] = set()
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or os.getpgid(int(proc.name)) != pgid:
                continue
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


def stop_group(proc: subprocess.Popen) -> None:
    """`dagster dev` started from a script ignores SIGTERM: kill its whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
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
        stop_group(proc)
        log.close()


def test_the_makefile_defaults_to_loopback_and_is_told_otherwise_by_variables() -> None:
    def dry_run(*args: str) -> str:
        return subprocess.run(
            [*MAKE, "-n", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout

    for target in ("ui", "ui-postgres"):
        assert 'dagster dev -h "127.0.0.1" -p "3000"' in dry_run(target)
        told = dry_run(target, "UI_HOST=0.0.0.0", "UI_PORT=3999")
        assert 'dagster dev -h "0.0.0.0" -p "3999"' in told


def test_make_ui_listens_on_loopback_only(ui: tuple[int, subprocess.Popen]) -> None:
    port, proc = ui
    answer = wait_for(f"http://127.0.0.1:{port}/server_info", proc, timeout_s=180)
    assert answer.status_code == 200 and "dagster_webserver_version" in answer.json()
    assert listening_addresses(port) == {LOOPBACK_V4}
    listeners = group_listeners(proc.pid)
    assert (LOOPBACK_V4, port) in listeners
    assert {a for a, _ in listeners} == {LOOPBACK_V4}, f"a UI process listens beyond: {listeners}"
    address = non_loopback_address()
    if address is None:
        pytest.skip("no non-loopback IPv4 address on this machine to try the UI from")
    assert refused(address, port), f"the UI answered on {address}:{port}"


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
        stop_group(proc)


def test_the_embedded_paper_broker_listens_on_loopback_only(tmp_path: Path) -> None:
    with PaperBroker(tmp_path / "p.sqlite") as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        assert broker.url.startswith("http://127.0.0.1:")
        assert listening_addresses(port) == {LOOPBACK_V4}
        address = non_loopback_address()
        if address is not None:
            assert refused(address, port)
