"""Building a stage's packages as a graph: each build starts once what it sees is in place, many
at once, within one budget of cores; their outputs are merged into the stage's root in one fixed
order, so what a build sees never depends on timing.

`Slots` is the budget: the machine's cores as tokens. A command phase holds what it asks for (a
build or check phase: all the stage's jobs; configure and the rest: one), waiting its turn, and
runs with `JOBS` set to it, so the compile jobs of every build running at once never exceed the
cores, while one-process phases (configure scripts) and the host's own steps (extracting,
merging, caching) of other builds run beside.

`MergeOrder` is the order: a package merges when every package before it has; a build that sees
the root waits until what it sees is merged. When one build fails, the waiting ones are cancelled
and the running ones finish (their outputs reach the cache).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager

from ..errors import Cancelled
from .sandbox import allow_runs, stop_all


class Slots:
    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.free = self.total
        self._queue: list[object] = []  # who waits, first come first served
        self._cond = threading.Condition()

    @contextmanager
    def take(self, want: int) -> Iterator[int]:
        """Hold `want` cores (at most all of them), waiting in turn for them; yields how many. A
        phase never starts with fewer than it asked for (a build at -j1 for its whole length, for a
        core that was busy for a moment), and none waits forever behind later, smaller ones."""
        need, me = max(1, min(want, self.total)), object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._queue[0] is me and self.free >= need)
            self._queue.pop(0)
            self.free -= need
            self._cond.notify_all()
        try:
            yield need
        finally:
            with self._cond:
                self.free += need
                self._cond.notify_all()


class MergeOrder:
    def __init__(self, order: list[str]) -> None:
        self.order = list(order)
        self.done = 0  # how many of `order` are merged
        self.broken = False
        self._cond = threading.Condition()

    def _wait(self, ready) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.broken or ready())
            if self.broken:
                raise Cancelled()

    def wait_merged(self, names: list[str]) -> None:
        """Until every one of `names` is merged (Cancelled if the stage stops first)."""
        last = max((self.order.index(n) for n in names), default=-1)
        self._wait(lambda: self.done > last)

    @contextmanager
    def turn(self, name: str) -> Iterator[None]:
        """Merge `name` in its turn: waits for every package before it, then lets the next go."""
        i = self.order.index(name)
        self._wait(lambda: self.done == i)
        try:
            yield
        except BaseException:
            self.stop()
            raise
        with self._cond:
            self.done = i + 1
            self._cond.notify_all()

    def stop(self) -> None:
        """Cancel every package still waiting."""
        with self._cond:
            self.broken = True
            self._cond.notify_all()


def run_graph(tasks: list[Callable[[], None]], merges: MergeOrder) -> None:
    """Run every task in a thread of its own (each waits on `merges` for what it needs). The first
    failure cancels what still waits; what runs finishes; then the failure is raised. ^C (or
    SIGTERM made ^C) in this thread stops every sandbox the tasks run, waits for them and raises."""
    with ThreadPoolExecutor(max_workers=max(1, len(tasks)), thread_name_prefix="build") as pool:
        futures = [pool.submit(task) for task in tasks]
        try:
            pending = futures
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
                if any(f.exception() is not None for f in done):
                    merges.stop()
        except BaseException:
            merges.stop()
            stop_all()
            wait(futures)
            allow_runs()
            raise
    failures = [f.exception() for f in futures if f.exception() is not None]
    first = next((e for e in failures if not isinstance(e, Cancelled)), None)
    if first is not None:
        raise first
