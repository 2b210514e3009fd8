"""Study: what distcc would do to an LLVM build of the full profile, from measured parts.

distcc (plain mode) runs each compile's preprocessing on the machine that runs the build, sends
the preprocessed unit to a machine with a byte-identical compiler, and takes the object back;
links, archives, tablegen and every other step stay where the build runs. So on N machines of C
cores the build takes at least the largest of: the local work (preprocessing, plus every step
that is not a compile) over C cores, all the work over N x C cores (the build's own machine
compiles too), and the longest single step. The order steps must keep (tablegen before the
compiles that include its output, links after their objects) and the network only add to it. This script measures the parts:

- every step's time and kind from the build's ninja log (benchmarks/ninja_log.py reads it);
- the share of a compile that is preprocessing, from a sample of the build's own compile
  commands (compile_commands.json in its kept tree) run twice in the stage 3 root, with -E and
  with -c, one at a time;

and prints the lower bound on 1 to 16 machines. It is a bound from measured parts, not a
distributed build: this machine is one.

    .venv/bin/python benchmarks/distcc_study.py NINJA_LOG BUILD_TREE STAGE3_ROOT [--sample 24]

e.g. RUN/logs/stage3/llvm/ninja_log.log WORK/stage3/build/llvm WORK/stage3/root
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import tempfile
from pathlib import Path

from ninja_log import kind, read

from serpentlib.build.sandbox import Bind, Sandbox


def variants(command: str) -> tuple[str, str]:
    """The compile command writing its object to /tmp, and the same preprocessing only."""
    argv = shlex.split(command)
    out = argv.index("-o")
    argv[out + 1] = "/tmp/unit.o"
    compile_ = shlex.join(argv)
    argv[out + 1] = "/tmp/unit.i"
    argv[argv.index("-c")] = "-E"
    return compile_, shlex.join(argv)


def measure(entries: list[dict], builds: Path, root: Path) -> list[tuple[str, float, float]]:
    """(file, seconds to preprocess, seconds to compile) of each entry, in the stage 3 root."""
    sandbox = Sandbox(seed=root, binds=[Bind(builds.parent, "/build", readonly=True)], path="/usr/bin:/bin")
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for e in entries:
            compile_, preprocess = variants(e["command"])
            times = []
            for cmd in (preprocess, compile_):
                rec = sandbox.run(cmd, cwd=e["directory"], log=Path(tmp) / "log")
                if rec.exit_code != 0:
                    raise SystemExit(f"{e['file']}: exit {rec.exit_code}\n" + (Path(tmp) / "log").read_text()[-2000:])
                times.append(rec.wall_s)
            found.append((e["file"], *times))
            print(f"  {times[0]:6.2f} s -E  {times[1]:6.2f} s -c  {e['file'].split('/src/', 1)[-1]}", flush=True)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ninja_log", type=Path)
    ap.add_argument("build_tree", type=Path, help="the kept build tree: <work>/stage3/build/llvm")
    ap.add_argument("root", type=Path, help="the stage 3 root the build ran in")
    ap.add_argument("--sample", type=int, default=24)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()

    steps = read(args.ninja_log)
    compile_s = sum(e - s for s, e, out in steps if kind(out) == "compile")
    other_s = sum(e - s for s, e, out in steps if kind(out) != "compile")
    longest = max(e - s for s, e, _ in steps)
    alone = (compile_s + other_s) / args.cores  # one machine, every core busy: what a list schedule gets at best
    entries = json.loads((args.build_tree / "build" / "compile_commands.json").read_text())
    sample = random.Random(0).sample(entries, args.sample)
    print(f"{len(steps)} steps: {compile_s / 60:.1f} min of compiles, {other_s / 60:.1f} min of other steps, "
          f"at best {alone / 60:.1f} min on one machine of {args.cores} cores; the longest step {longest:.1f} s")
    print(f"preprocessing against compiling, {args.sample} compile commands of the build, one at a time:")
    found = measure(sample, args.build_tree, args.root)
    pre, full = sum(p for _, p, _ in found), sum(c for _, _, c in found)
    share = pre / full
    print(f"preprocessing is {100 * share:.1f} % of a compile ({pre:.1f} s of {full:.1f} s)")
    local = share * compile_s + other_s
    remote = (1 - share) * compile_s
    print("\nmachines  local work / cores  all work / all cores  at least (min)  faster than one machine")
    for n in (1, 2, 4, 8, 16):
        bound = max(local / args.cores, (local + remote) / (n * args.cores), longest)
        print(f"{n:8d}  {local / args.cores / 60:18.1f}  {(local + remote) / (n * args.cores) / 60:20.1f}  {bound / 60:14.1f}"
              f"  {alone / bound:5.2f}x at most")


if __name__ == "__main__":
    main()
