"""Test-wide settings: the hypothesis profile every property-based test runs under.

Derandomized with no example database, so a run is reproducible and leaves nothing behind;
no deadline, because the first great-expectations validation in a process takes seconds.
`HYPOTHESIS_PROFILE=thorough` runs many more examples when hunting for a bug.
"""

import os

from hypothesis import HealthCheck, settings

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
