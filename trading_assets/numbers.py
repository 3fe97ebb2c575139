"""Turning whatever a row holds (numpy scalars, NaN, pd.NA, NaT, strings) into a number or None."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """A finite float, or None for missing, NaN, inf, pd.NA, NaT, booleans or non-numbers."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
