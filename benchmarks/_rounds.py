"""Timed rounds shared by the benchmarks: every system once per round, in rotated order.

Rotating the order means a slow spell of a shared machine hits every system alike.
Callers warm their systems up first and take medians of the returned times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def rotated(names: list[T], turn: int) -> list[T]:
    """``names`` starting at position ``turn`` (modulo its length)."""
    k = turn % len(names)
    return names[k:] + names[:k]


def time_rounds(
    runners: dict[str, Callable[[], Any]], repeats: int, *, width: int = 14
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run each runner once per round for ``repeats`` rounds, printing every time.

    Returns:
        The seconds of each runner per round, and each runner's output of the last round.
    """
    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, Any] = {}
    for r in range(repeats):
        for name in rotated(names, r):
            start = time.perf_counter()
            outputs[name] = runners[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  round {r + 1}/{repeats} {name:<{width}} {times[name][-1]:8.2f} s", flush=True)
    return times, outputs
