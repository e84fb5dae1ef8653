"""What a header field may hold: small predicates that the wire schema (shared/messages.py) and the stages'
manifests (the fields each stage writes) are built from. Each runs on every message at the door, so they
check types with ``type(x) is`` where a subclass cannot come from msgpack."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]


def number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def count(x: Any, limit: int = 1 << 40) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < limit


def numbers(n: int) -> Check:
    return lambda x: isinstance(x, list) and len(x) == n and all(number(v) for v in x)


def ints(n: int) -> Check:
    return lambda x: isinstance(x, list) and len(x) == n and all(isinstance(v, int) and abs(v) < 1 << 31 for v in x)


def optional(check: Check) -> Check:
    return lambda x: x is None or check(x)


def flag(x: Any) -> bool:
    return isinstance(x, bool)


def table(x: Any) -> bool:
    return isinstance(x, dict)


def named_numbers(*keys: str, low: float = -math.inf, high: float = math.inf) -> Check:
    """A map with these keys, each a finite number in [low, high]."""
    return lambda x: isinstance(x, dict) and all(number(x.get(k)) and low <= x[k] <= high for k in keys)


POINT = numbers(2)
