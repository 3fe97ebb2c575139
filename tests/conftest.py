"""Test-wide settings: the hypothesis profile every property-based test runs under, a data folder
of each test process's own, and the order the test command's parallel workers take files in.

Derandomized with no example database, so a run is reproducible and leaves nothing behind;
no deadline, because the first great-expectations validation in a process takes seconds.
`HYPOTHESIS_PROFILE=thorough` runs many more examples when hunting for a bug.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Whatever a test writes to the default data folder (the backtest chart, a default warehouse)
# goes to a folder of this test process, removed at its exit: never the repository's data/, nor
# the folder of a parallel worker (which inherits the variables from the process that started it).
_OWN = "TRADING_TESTS_OWN_DATA_DIR"
if os.environ.get("TRADING_DATA_DIR") in (None, os.environ.get(_OWN)):
    _data = tempfile.mkdtemp(prefix="trading-tests-")
    os.environ["TRADING_DATA_DIR"] = os.environ[_OWN] = _data
    atexit.register(shutil.rmtree, _data, ignore_errors=True)

# The test command runs files on two workers (`make test`: pytest-xdist, one file at a time per
# worker, in collection order). The graph and security tests start daemons, webservers and run
# processes and take minutes each; queued first, they run beside each other and the quick unit
# files fill the end, instead of one slow file running alone at the end.
_SLOW_FIRST = ("graph", "security")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        folder = item.path.relative_to(tests).parts[0] if item.path.is_relative_to(tests) else ""
        return _SLOW_FIRST.index(folder) if folder in _SLOW_FIRST else len(_SLOW_FIRST)

    items.sort(key=rank)  # stable: the order inside each folder is kept


settings.register_profile(
    "repo",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("repo"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repo"))
