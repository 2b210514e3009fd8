"""Benchmark: the package manager on a generated repository of many small files. Writes the
packages and index, installs everything into an empty root (staging, journal, rename, database),
verifies every file, removes everything. Targets on this kind of machine (2 cores): 20,000 files
(78 MiB) installed in under 15 s (file creation and xz decompression are most of it) and
verified in under 2 s. Prints its figures; run with the project's Python:

    .venv/bin/python benchmarks/package_manager.py [--packages 100 --files 200 --size 4096]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from serpentlib.pkg.installer import Root
from serpentlib.pkg.package import Manifest, scan_tree, write_archive
from serpentlib.pkg.repo import Repository, write_index
from serpentlib.stages.layout import ROOT_LINKS


def generate(base: Path, packages: int, files: int, size: int, seed: int = 1) -> list[Manifest]:
    rng = random.Random(seed)
    manifests = []
    for p in range(packages):
        tree = base / "trees" / f"pkg{p}"
        for f in range(files):
            path = tree / "usr" / "share" / f"pkg{p}" / f"d{f % 10}" / f"file{f}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(size))
        entries, where = scan_tree(tree, ROOT_LINKS)
        m = Manifest(name=f"pkg{p}", version="1", release=1, license="MIT", summary="generated", files=entries,
                     depends=[f"pkg{p - 1}"] if p else [])
        write_archive(m, where, base / "repo", 0)
        manifests.append(m)
    write_index(base / "repo", manifests)
    return manifests


def timed(label: str, fn, files: int):
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    print(f"{label:<28} {seconds:7.2f} s  {files / seconds:9.0f} files/s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", type=int, default=100)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size", type=int, default=4096)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        total = args.packages * args.files
        print(f"{args.packages} packages x {args.files} files of {args.size} bytes = {total} files, "
              f"{total * args.size / 2**20:.0f} MiB")
        timed("package and index", lambda: generate(base, args.packages, args.files, args.size), total)
        repo_bytes = sum(p.stat().st_size for p in (base / "repo").iterdir())
        print(f"{'repository size':<28} {repo_bytes / 2**20:7.1f} MiB")
        (base / "root").mkdir()
        root = Root(base / "root")
        # The last package depends on all the others through the chain: one name installs all.
        done = timed("install (resolve + all)", lambda: root.install(Repository(base / "repo"), [f"pkg{args.packages - 1}"]), total)
        assert len(done) == args.packages
        problems = timed("verify (re-hash every file)", root.verify, total)
        assert problems == []
        timed("remove all", lambda: root.remove([f"pkg{p}" for p in range(args.packages)]), total)
        assert not any((base / "root" / "usr").rglob("file*"))
        print(f"{'max RSS':<28} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:7.0f} MiB")


if __name__ == "__main__":
    main()
