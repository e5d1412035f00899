"""The one parallel map's local backend: order, and the first item run in this process on request."""

from __future__ import annotations

import os

from execution import parallel_map


def pid_and_square(x: int) -> tuple[int, int]:
    return os.getpid(), x * x


def test_results_keep_their_order_and_first_here_runs_the_first_item_in_this_process() -> None:
    items = list(range(5))
    spawned = list(parallel_map(pid_and_square, items, workers=2))
    assert [s for _, s in spawned] == [x * x for x in items]
    assert os.getpid() not in {pid for pid, _ in spawned}
    first = list(parallel_map(pid_and_square, items, workers=2, first_here=True))
    assert [s for _, s in first] == [x * x for x in items]
    assert first[0][0] == os.getpid() and os.getpid() not in {pid for pid, _ in first[1:]}
    assert list(parallel_map(pid_and_square, [3], workers=2, first_here=True)) == [(os.getpid(), 9)]
    assert [s for _, s in parallel_map(pid_and_square, [1, 2], workers=2, first_here=True)] == [1, 4]
