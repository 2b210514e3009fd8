"""What more machines would buy: the critical path and a list schedule over a stage's graph."""

from serpentlib.records.schedule import critical_path, list_schedule

from .conftest import FIXTURES

# A stage 3 of the mini kind: a chain in the chroot, and a long build on the host that waits on nothing.
TIMES = {"musl": 10.0, "busybox": 30.0, "bash": 40.0, "tcc": 20.0, "linux": 200.0}
WAITS = {"musl": [], "busybox": ["musl"], "bash": ["musl", "busybox"], "tcc": ["musl", "busybox", "bash"],
         "linux": []}


def test_the_critical_path_is_the_longest_chain_of_waits():
    assert critical_path(TIMES, WAITS) == (200.0, ["linux"])
    chain = {**TIMES, "linux": 50.0}
    assert critical_path(chain, WAITS) == (100.0, ["musl", "busybox", "bash", "tcc"])


def test_a_list_schedule_never_beats_the_critical_path_and_one_machine_sums_everything():
    assert list_schedule(TIMES, WAITS, 1) == sum(TIMES.values())
    assert list_schedule(TIMES, WAITS, 2) == 200.0  # the chain runs beside the kernel
    for m in (1, 2, 4, 8, 16):
        assert list_schedule(TIMES, WAITS, m) >= critical_path(TIMES, WAITS)[0]
    independent = {n: [] for n in TIMES}
    assert list_schedule(TIMES, independent, 16) == max(TIMES.values())


def test_a_full_run_is_bound_by_its_llvm_builds():
    """The full profile's run published on 2026-12-01, whose cost is complete (its records, kept as a
    fixture; from before graph.csv: its graph is derived): stage 3 is one chain in the chroot, so no
    number of machines shortens it; stage 2's cross LLVM is its whole critical path but for a tenth.
    The README's scale table is this run's."""
    from serpentlib.records.schedule import scale_table

    table = scale_table(FIXTURES / "runs" / "full-20261201").set_index("stage")
    assert table.at["stage3", "on_16"] == table.at["stage3", "critical_path_s"] > 5 * 3600
    assert table.at["stage3", "on_1"] - table.at["stage3", "on_16"] < 60
    assert table.at["stage2", "critical_path_s"] > 0.9 * table.at["stage2", "on_1"]  # LLVM alone
