"""Builds as a graph: the cores shared, merges in the stage's order whatever the timing."""

import signal
import threading
import time

import pytest

from serpentlib.build.graph import MergeOrder, Slots, run_graph
from serpentlib.build.sandbox import Sandbox
from serpentlib.errors import BuildError, Interrupted


def test_builds_running_at_once_never_hold_more_cores_than_there_are():
    slots, held, peak, lock = Slots(3), [0], [0], threading.Lock()

    def build(want):
        with slots.take(want) as got:
            assert got == want
            with lock:
                held[0] += got
                peak[0] = max(peak[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= got

    threads = [threading.Thread(target=build, args=(w,)) for w in (3, 1, 2, 3, 1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] <= 3 and slots.free == 3


def test_outputs_merge_in_the_stages_order_whatever_order_the_builds_end_in():
    order = ["a", "b", "c", "d"]
    merges, merged = MergeOrder(order), []
    took = {"a": 0.15, "b": 0.0, "c": 0.1, "d": 0.0}  # b and d finish first

    def build(name):
        time.sleep(took[name])
        with merges.turn(name):
            merged.append(name)

    run_graph([lambda n=n: build(n) for n in order], merges)
    assert merged == order


def test_a_build_that_sees_the_root_starts_after_what_it_sees_is_merged():
    order = ["a", "b"]
    merges, events = MergeOrder(order), []

    def a():
        time.sleep(0.1)
        with merges.turn("a"):
            events.append("a merged")

    def b():
        merges.wait_merged(["a"])
        events.append("b started")
        with merges.turn("b"):
            pass

    run_graph([a, b], merges)
    assert events == ["a merged", "b started"]


def test_a_failed_build_cancels_what_waits_and_lets_what_runs_finish(tmp_path):
    order = ["fails", "runs", "waits"]
    merges, finished = MergeOrder(order), []

    def fails():
        raise BuildError("stage2", "fails", "build", 2, tmp_path / "build.log")

    def runs():
        time.sleep(0.3)
        finished.append("runs")  # built: its output would reach the cache
        with merges.turn("runs"):  # but it merges after `fails`, which never will
            finished.append("merged")

    def waits():
        merges.wait_merged(["fails", "runs"])
        finished.append("waits started")

    with pytest.raises(BuildError, match="fails"):
        run_graph([fails, runs, waits], merges)
    assert finished == ["runs"]


def test_an_interrupt_stops_the_sandboxes_other_threads_run(tmp_path, monkeypatch):
    """^C reaches the thread that waits on the builds; the builds' sandboxes run in others. Each is
    stopped, and its run raises Interrupted with what it used; none outlives the call."""
    merges = MergeOrder(["one", "two"])
    started = threading.Event()
    raised = []

    def build(name):
        try:
            Sandbox(writable=[tmp_path]).run(f"touch {tmp_path}/{name}; exec sleep 600", cwd="/",
                                             log=tmp_path / f"{name}.log")
        except Interrupted as exc:
            raised.append(exc.record.exit_code)
            raise

    def interrupt():
        while not all((tmp_path / n).exists() for n in ("one", "two")):
            time.sleep(0.05)
        started.set()
        import _thread
        _thread.interrupt_main()

    # Python's own ^C handler, as in a terminal: a process started in the background (a CI job,
    # `make test &`) inherits SIGINT ignored, and then interrupt_main does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_graph([lambda: build("one"), lambda: build("two")], merges)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started.is_set() and time.monotonic() - t0 < 60
    assert raised == [130, 130]
    assert Sandbox(writable=[tmp_path]).run("true", cwd="/", log=tmp_path / "after.log").exit_code == 0, \
        "runs are allowed again after the stop"
