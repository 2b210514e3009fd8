"""The `serpent` command."""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
from pathlib import Path

from .errors import SerpentError

log = logging.getLogger("serpent")


def _stages(text: str | None, available: list[int]) -> list[int]:
    if not text:
        return available
    try:
        wanted = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise SerpentError(f"--stage '{text}' is not a list of stage numbers", "e.g. --stage 1 or --stage 1,2") from None
    missing = [s for s in wanted if s not in available]
    if missing:
        raise SerpentError(f"the profile has no stage {missing}", f"its stages are {available}")
    return wanted


def cmd_run(args: argparse.Namespace) -> int:
    from .build.profile import load_profile

    profile = load_profile(args.profile)
    stages = _stages(args.stage, profile.stage_numbers)
    # SIGTERM (a CI timeout, a service stop) interrupts like ^C: the kernel and its builds stop
    # too. Only while this command runs: a caller's own handler (pytest's) is given back.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args, profile, stages)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace, profile, stages: list[int]) -> int:
    from .paths import default_run_dir, default_work_dir
    from .records import metrics
    from .records.run import RunOptions, new_run_id, run_stages

    if args.workers is not None and args.workers < 1:
        raise SerpentError(f"--workers {args.workers}: a cluster needs at least one worker", "give --workers 1 or more")
    run_id = new_run_id(profile.name)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(run_id)
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    log.info("run %s: profile %s, stages %s, work in %s", run_dir, profile.name, stages, work_dir)
    info = run_stages(profile, stages, run_dir, work_dir,
                      RunOptions(run_id=run_id, use_cache=not args.rebuild, recheck=args.recheck, metrics_db=args.db,
                                 log_output=not args.quiet, cluster=args.cluster or "", workers=args.workers or 0))
    phases = metrics.load(run_dir, "phases")
    for stage, rows in phases.groupby("stage", sort=False):
        print(f"\n{stage}: wall seconds per package and phase")
        print(metrics.package_times(rows).to_string())
    print()
    phases, checks = metrics.load(run_dir, "phases"), metrics.load(run_dir, "checks")
    print(metrics.stage_summary(phases, checks, info.stages).to_string(index=False))
    print(f"run {info.run_id}: {', '.join(f'stage {k} {v}' for k, v in info.stages.items())} "
          f"in {info.duration_s:.0f} s; report: {run_dir}")
    return 0


def cmd_pkg(args: argparse.Namespace) -> int:
    from .pkg.installer import Root
    from .pkg.repo import Repository, trusted_keys

    if args.action == "list" and args.repo and not args.root:
        for e in Repository(Path(args.repo)).entries.values():
            print(f"{e.name:16} {e.version + '-' + str(e.release):24} {e.installed_size:>10} B  {' '.join(e.depends)}")
        return 0
    if not args.root:
        raise SerpentError(f"serpent pkg {args.action}: which root?", "give --root DIR (e.g. <work>/stage4/root)")
    root = Root(Path(args.root))
    # SIGTERM interrupts like ^C: the transaction is rolled back before exiting.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.action == "install":
            if not args.repo:
                raise SerpentError("serpent pkg install: which repository?", "give --repo DIR (e.g. <work>/stage4/repo)")
            repo = Repository(Path(args.repo))
            if args.insecure:
                print("warning: --insecure: the index's signature is not checked (an unsigned index, an unknown key "
                      "or a bad signature pass); package files are still checked against that index",
                      file=sys.stderr)
            trusted = None if args.insecure else trusted_keys(root.path, tuple(Path(t) for t in args.trust))
            done = root.install(repo, args.names, trusted=trusted, insecure=args.insecure,
                                allow_downgrade=args.allow_downgrade)
            if repo.signed_by:
                print(f"index signed by {repo.signed_by.id} ({repo.signed_by.origin})")
            print(f"installed {', '.join(done)}" if done else "nothing to do: already installed")
        elif args.action == "remove":
            print(f"removed {', '.join(root.remove(args.names))}")
        elif args.action == "untrust":
            for kid in args.names:
                print(f"{root.untrust(kid)}: gone; {root.path} no longer trusts the key {kid}")
    except KeyboardInterrupt:
        print(f"interrupted: the {args.action} was rolled back; {root.path} is as it was", file=sys.stderr)
        return 130
    if args.action in ("install", "remove", "untrust"):
        return 0
    if args.action == "list":
        with root.locked():
            print(root.table().to_string(index=False))
    elif args.action == "verify":
        with root.locked():
            problems = root.verify()
            count = sum(len(m.files) for m in root.installed().values())
        for p in problems:
            print(f"{p.package}: {p.path}: {p.problem}")
        print(f"{len(problems)} problem(s) in {count} files of {len(root.installed())} packages")
        return 1 if problems else 0
    return 0


def cmd_key(args: argparse.Namespace) -> int:
    from .pkg.keys import KeyStore

    store = KeyStore(Path(args.keys) if args.keys else None)
    if args.action == "generate":
        key = store.generate()
        print(f"made key {key.id}: it signs from now on\n  private: {store.path / (key.id + '.key')} (mode 600)\n"
              f"  public:  {key.origin} (stage 4 installs it as /etc/serpent/keys/{key.id}.pub)")
    elif args.action == "retire":
        if not args.id:
            raise SerpentError("serpent key retire: which key?", "give its id, see `serpent key list`")
        print(f"moved {args.id} to {store.retire(args.id)}")
    else:
        signing = store.signing_id()
        for kid, key in store.public().items():
            private = (store.path / f"{kid}.key").is_file()
            print(f"{kid}  {'signs' if kid == signing else '     '}  {'private+public' if private else 'public only'}  "
                  f"{key.origin}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .build.fetching import check, fetch_profile
    from .build.profile import load_profile

    profile = load_profile(args.profile)
    if not args.check:
        print(fetch_profile(profile, store_dir=args.store).to_string(index=False))
        return 0
    table = check(profile, store_dir=args.store)
    with pd_options():
        print(table.drop(columns="fix").to_string(index=False))
    gone = table[~table["available"]].drop_duplicates("file")
    for _, row in gone.iterrows():
        print(f"error: {row['file']} ({row['package']}) can be had from no mirror, upstream or Debian's index"
              f"{' (only this store still holds it)' if row['store'] == 'yes' else ''}: {row['fix']}", file=sys.stderr)
    print(f"{len(table.drop_duplicates('file')) - len(gone)} of {len(table.drop_duplicates('file'))} files "
          f"can be had now")
    return 1 if len(gone) else 0


def cmd_mirror(args: argparse.Namespace) -> int:
    from .build.fetching import export_mirror
    from .build.profile import load_profile

    table = export_mirror(load_profile(args.profile), Path(args.dir), store_dir=args.store)
    print(table.to_string(index=False))
    print(f"{table['file'].nunique()} files in {args.dir}; list it in the profile's `mirrors:` to fetch from it")
    return 0


def cmd_stage0(args: argparse.Namespace) -> int:
    import json

    from .build.profile import load_profile
    from .build.seed import ensure

    profile = load_profile(args.profile)
    seed = ensure(profile.common.get("seed") or {}, progress=print, thorough=True, recreate=args.recreate)
    m = seed.manifest
    print(f"stage 0: {seed.root}\n  suite {m['suite']}, {len(m['packages'])} packages, "
          f"{m['size_bytes'] / 1e6:.0f} MB, made in {m['creation_s']:.0f} s by {m['tool']} on {m['created']}\n"
          f"  {m['clang']['version_line']}; every file verified against the list taken when it was made")
    if args.manifest:
        print(json.dumps(seed.facts(), indent=1))
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from .build.lock import holder
    from .build.profile import load_profile
    from .paths import default_work_dir
    from .stages.shell import shell_sandbox

    profile = load_profile(args.profile)
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    sandbox, shell, cwd = shell_sandbox(profile, args.stage, work_dir, args.serpent)
    busy = holder(work_dir)
    if busy:  # a run rebuilds a stage's root from the cache as it starts the stage: the shell may see half of it
        print(f"serpent shell: {work_dir} is in use by {busy.get('purpose') or 'a run'} (pid {busy.get('pid', '?')}, "
              f"since {busy.get('since', '?')}); a root that run is making may be incomplete under this shell",
              file=sys.stderr)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    # The command is found on the sandbox's PATH by its shell.
    return sandbox.interactive([shell, "-c", 'exec "$@"', shell, *command] if command else [shell, "-i"], cwd=cwd)


def cmd_image(args: argparse.Namespace) -> int:
    from .build.profile import load_profile
    from .paths import default_work_dir
    from .stages.boot import image_command

    profile = load_profile(args.profile)
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    out = Path(args.output) if args.output else work_dir / "stage4.img"
    made = image_command(profile, work_dir.resolve(), out)
    print(f"{made}: {made.stat().st_size // 2**20} MiB, ext4, the stage 4 root of {work_dir}")
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from .build.profile import load_profile
    from .paths import RECIPES, default_work_dir
    from .stages.boot import boot_command

    profile = load_profile(args.profile)
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    out = Path(args.output) if args.output else work_dir / "boot"
    booted, records = boot_command(profile, work_dir.resolve(), out, RECIPES, args.timeout, args.accel)
    for r in records:
        print(f"{r.outcome:5}  {r.check:13} {r.subject}: {r.detail}")
    failed = sum(r.fails for r in records)
    print(f"\n{len(records) - failed} of {len(records)} passed; console log: {booted.console}")
    return 1 if failed else 0


def cmd_lane(args: argparse.Namespace) -> int:
    from .build.profile import StageParams, load_profile
    from .paths import default_run_dir, default_work_dir
    from .records.run import new_run_id
    from .stages.lane import RELINK, SYSTEMD, lane

    profile = load_profile(args.profile)
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    run_id = new_run_id(f"{profile.name}-lane")
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(run_id)
    keys = ("seed", "target", "cflags", "mirrors", "fetch_upstream")
    params = StageParams(**{k: v for k, v in profile.common.items() if k in keys}, profile=profile.name,
                         work_dir=str(work_dir), run_dir=str(run_dir), run_id=run_id,
                         packages=args.packages or SYSTEMD, use_cache=not args.rebuild,
                         relink=args.relink.split(",") if args.relink else [] if args.packages else RELINK,
                         recipes_dir=args.recipes_dir or "", boot=args.boot, boot_timeout=args.timeout)
    result = lane(params)
    failed = [c for c in result.checks if c.fails]
    for c in failed:
        print(f"FAIL {c.check} {c.subject}: {c.detail}")
    built = ", ".join(s.package for s in result.sizes)
    print(f"lane: {built}; {len(result.checks) - len(failed)} of {len(result.checks)} checks passed; records: {run_dir}")
    return 1 if failed else 0


def cmd_scale(args: argparse.Namespace) -> int:
    from .records.schedule import scale_table

    table = scale_table(Path(args.run), args.cores)
    if table.empty:
        raise SerpentError(f"{args.run} has no graph.csv: it was run before builds were scheduled as a graph",
                           "run the profile again with this version, then ask again")
    print(table.to_string(index=False))
    print("\nmakespan: the stage's builds, first start to last end; critical_path: the longest chain of builds "
          "that wait on each other; cpu_bound: CPU seconds over the cores; on_N: a list schedule on N machines "
          "of this kind, each package as long as it took here")
    return 0


def cmd_policies(args: argparse.Namespace) -> int:
    from .build.profile import load_profile
    from .paths import RECIPES, default_work_dir
    from .stages.stage4 import preview

    profile = load_profile(args.profile)
    if 3 not in profile.stage_numbers or 4 not in profile.stage_numbers:
        raise SerpentError(f"profile {profile.name} has no stages 3 and 4 to preview", "give a profile that has both")
    work_dir = Path(args.work_dir) if args.work_dir else default_work_dir(profile.name)
    s3, s4 = profile.parameters(3), profile.parameters(4)
    checks, missing = preview(work_dir, Path(profile.common.get("recipes_dir") or RECIPES), s3["packages"],
                              s4.get("allowed_tree"), s4.get("policy_exceptions"), s4.get("cflags", ""))
    built = len(s3["packages"]) - len(missing)
    print(f"stage 4's checks over the {built} of {len(s3['packages'])} stage 3 packages built so far in {work_dir}"
          + (f" (not yet: {', '.join(missing)})" if missing else ""))
    counts: dict[str, int] = {}
    excused: dict[tuple[str, str, str], list[str]] = {}  # one line per reason: FORTIFY's is every package's
    for c in checks:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
        if c.outcome == "fail":
            print(f"  fail  {c.check} {c.subject}: {c.detail[:300]}")
        elif c.outcome in ("xfail", "xpass"):
            excused.setdefault((c.outcome, c.check, c.reason), []).append(c.subject)
    for (outcome, check, reason), subjects in excused.items():
        print(f"  {outcome} {check} {', '.join(subjects)}: {reason}")
    print(", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "nothing to check yet")
    return 1 if counts.get("fail") else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .records import cost
    from .records.history import History
    from .records.report import write_index

    run_dir = Path(args.run)
    if not (run_dir / "run.json").exists():
        raise SerpentError(f"{run_dir} is not a run directory (no run.json)", "give a directory made by serpent run")
    if args.db or not (run_dir / cost.FILE).is_file():  # what the result cost, from the runs that made it
        try:
            with History(args.db) as history:
                cost.write(run_dir, history)
        except (SerpentError, OSError, sqlite3.Error) as exc:  # the report goes on without it
            print(f"warning: what the result cost is left out: {exc}", file=sys.stderr)
    print(write_index(run_dir, code=args.code))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .records.report import publish

    copied = publish(Path(args.run), Path(args.dest))
    for name, size in copied:
        print(f"{'' if name.startswith('not published') else size:>10}  {name}")
    print(f"{sum(s for _, s in copied):>10}  bytes in {args.dest}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .records.history import History

    with History(args.db) as history:
        for run in args.runs:
            done = history.ingest(Path(run), replace=args.replace)
            print(f"{done.run_id} ({run}) -> {history.path}{'' if done.added else ': already there, unchanged'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .records.compare import (Noise, by_origin, compare, compare_page, load_run, seed_difference,
                                  stage_checks_changed, to_html)
    from .records.history import History

    noise = Noise(args.threshold, args.min_seconds, args.size_threshold, args.min_bytes)
    with History(args.db) as history:
        a, b = load_run(args.run_a, history), load_run(args.run_b, history)
    stages = [f"stage{n}" for n in args.stage.split(",")] if args.stage else None
    table, checks = compare(a, b, noise, stages), stage_checks_changed(a, b, stages)
    if seed_difference(a, b):
        print(f"note: {seed_difference(a, b)}\n")
    built, cached, counts = by_origin(table)
    with pd_options():
        print(built.to_string(index=False))
        if not cached.empty:
            print("\ntaken from the build cache in run A or B (no time delta):")
            print(cached.to_string(index=False))
        print(f"\nchecks that changed: {len(checks)}")
        if not checks.empty:
            print(checks.to_string(index=False))
    out = Path(args.output) if args.output else compare_page(a, b)
    out.write_text(to_html(a, b, table, checks, noise))
    flagged = table[table["flag"] != ""]
    print(f"\n{len(flagged)} of {len(table)} packages flagged beyond noise; {counts}; {out}")
    return 3 if args.fail_on_flag and (len(flagged) or len(checks)) else 0


def cmd_explore(args: argparse.Namespace) -> int:
    from .records.serve import serve

    return serve(args.db, args.dashboard, args.port)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .build.profile import load_profile
    from .paths import default_run_dir
    from .records.reproduce import reproduce
    from .records.run import new_run_id

    profile = load_profile(args.profile)
    stages = _stages(args.stage, profile.stage_numbers)
    top = Path(args.dir) if args.dir else default_run_dir(f"reproduce-{new_run_id(profile.name)}")
    done = reproduce(profile, stages, top, Path(args.against) if args.against else None,
                     Path(args.seed_from) if args.seed_from else None, args.quiet, args.db,
                     cluster=args.cluster or "", workers=args.workers or 0)
    with pd_options():
        for d in done.diffs:
            print(f"{d.stage}: {d.identical} of {d.files} files identical ({d.percent}%)")
        if len(done.differing):
            print(done.differing.to_string(index=False))
    print(f"report: {top / 'checks.csv'}, {top / 'differing.csv'}")
    return 4 if args.fail_on_difference and len(done.differing) else 0


def pd_options():
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="serpent", description="Measured musl + LLVM bootstraps driven by notebooks.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a profile's stage notebooks into a run directory")
    r.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini)")
    r.add_argument("--stage", help="stage numbers to run, e.g. 1 or 1,2 (default: all of the profile's)")
    r.add_argument("--run-dir", help="where notebooks, logs and records go (default: runs/<run_id>)")
    r.add_argument("--work-dir", help="where roots and build trees go (default: work/<profile>)")
    r.add_argument("-q", "--quiet", action="store_true", help="do not stream the notebooks' output")
    r.add_argument("--rebuild", action="store_true", help="build every package, ignoring the build cache")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="ADDRESS",
                       help="a Dask scheduler (tcp://HOST:8786): its workers build what sees stages 0 and 1 alone")
    where.add_argument("--workers", type=int, metavar="N",
                       help="the same on a LocalCluster of N worker processes on this machine")
    r.add_argument("--recheck", action="store_true",
                   help="run every check again, also in a stage whose packages all come from the cache (by default "
                        "such a stage replays the checks of the run that built it, and says so in checks.csv)")
    r.add_argument("--db", help="metrics database: a path or sqlite:///PATH (default: $SERPENT_METRICS_DB or "
                                "~/.local/share/serpentlib/metrics.sqlite)")
    r.set_defaults(func=cmd_run)
    sh = sub.add_parser("shell", help="a shell (or a command) in a stage's root, read-only, with a scratch /tmp")
    sh.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini)")
    sh.add_argument("--stage", type=int, choices=(1, 2, 3, 4), default=3,
                    help="whose root (default: 3); 1: stage 0 with stage 1's cross compilers on PATH and the "
                         "current directory writable")
    sh.add_argument("--work-dir", help="where the run's roots are (default: work/<profile>)")
    sh.add_argument("--serpent", action="store_true", help="stage 3 with stage 2's root at /serpent, as it is built")
    sh.add_argument("command", nargs=argparse.REMAINDER, help="what to run instead of an interactive shell")
    sh.set_defaults(func=cmd_shell)
    im = sub.add_parser("image", help="the stage 4 root as a reproducible ext4 disk image (no loop mount, no root)")
    im.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini)")
    im.add_argument("--work-dir", help="where the run's roots are (default: work/<profile>)")
    im.add_argument("-o", "--output", help="the image file (default: <work-dir>/stage4.img)")
    im.set_defaults(func=cmd_image)
    bo = sub.add_parser("boot", help="boot the stage 4 root in QEMU with its kernel; every recipe's checks run inside")
    bo.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini)")
    bo.add_argument("--work-dir", help="where the run's roots are (default: work/<profile>)")
    bo.add_argument("--timeout", type=float, default=0.0,
                    help="seconds before the boot counts as hung and QEMU is stopped (default: 60 KVM, 300 TCG)")
    bo.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                    help="auto (default): KVM when a probe boot shows it works here, TCG otherwise")
    bo.add_argument("--output", help="the image, console log and QEMU log go here (default: <work-dir>/boot)")
    bo.set_defaults(func=cmd_boot)
    la = sub.add_parser("lane", help="cross-build recipes (default: systemd's) onto a copy of stage 1's sysroot, "
                                     "in minutes: does a stage 3 recipe build against musl?")
    la.add_argument("packages", nargs="*", help="recipes, in order (default: systemd, udev and dbus with what they need)")
    la.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini); its stage 1 must be built")
    la.add_argument("--work-dir", help="where stage 1 is (default: work/<profile>); the lane goes to <work-dir>/lane")
    la.add_argument("--run-dir", help="where logs and records go (default: runs/<run_id>)")
    la.add_argument("--relink", help="packages to build a second time once all are in, e.g. util-linux,systemd,dbus "
                                     "(default: those three for the default set, none for packages given)")
    la.add_argument("--rebuild", action="store_true", help="build every package, ignoring the build cache")
    la.add_argument("--recipes-dir", help="recipes from this folder instead of the project's (a copy you are changing)")
    la.add_argument("--boot", action="store_true", help="then boot the work directory's stage 4 root with the lane's "
                                                        "builds merged over it (systemd as PID 1); their checks run inside")
    la.add_argument("--timeout", type=float, default=0.0, help="seconds before the boot counts as hung (default: "
                                                               "60 KVM, 300 TCG)")
    la.set_defaults(func=cmd_lane)
    sc = sub.add_parser("scale", help="what more machines would buy: a run's critical path, CPU bound and the "
                                      "makespan predicted on 1 to 16 machines, per stage")
    sc.add_argument("run", help="the run directory")
    sc.add_argument("--cores", type=int, help="cores per machine (default: the run's host's)")
    sc.set_defaults(func=cmd_scale)
    po = sub.add_parser("policies", help="stage 4's policy and flag checks over what stage 3 has built so far")
    po.add_argument("--profile", default="mini", help="params/<profile>.yaml (default: mini)")
    po.add_argument("--work-dir", help="where the run builds (default: work/<profile>)")
    po.set_defaults(func=cmd_policies)
    rp = sub.add_parser("report", help="(re)write a run's index.html and notebook HTML")
    rp.add_argument("run", help="the run directory")
    rp.add_argument("--code", action="store_true", help="show the notebooks' code too")
    rp.add_argument("--db", help="the metrics database to work out what the result cost from (default: as "
                                 "`serpent ingest`); without it, a cost.csv the run has is kept")
    rp.set_defaults(func=cmd_report)
    pub = sub.add_parser("publish", help="copy a run's report (index.html, the stages' HTML, the records) for others")
    pub.add_argument("run", help="the run directory")
    pub.add_argument("dest", help="where to put it, e.g. docs/runs/full")
    pub.set_defaults(func=cmd_publish)
    ing = sub.add_parser("ingest", help="add run directories to the metrics database")
    ing.add_argument("runs", nargs="+")
    ing.add_argument("--db")
    ing.add_argument("--replace", action="store_true",
                     help="replace a stored run whose id a directory has but whose records differ (default: refuse)")
    ing.set_defaults(func=cmd_ingest)
    c = sub.add_parser("compare", help="per stage and package: time, size and checks of run B against run A")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--threshold", type=float, default=0.25, help="relative time change that counts (default 0.25)")
    c.add_argument("--min-seconds", type=float, default=2.0, help="absolute time change that counts (default 2 s)")
    c.add_argument("--size-threshold", type=float, default=0.02, help="relative size change that counts (0.02)")
    c.add_argument("--min-bytes", type=int, default=4096, help="absolute size change that counts (4096)")
    c.add_argument("-o", "--output", "--html", dest="output",
                   help="where to write the HTML (default: compare-A-B.html in run B's directory)")
    c.add_argument("--fail-on-flag", action="store_true", help="exit 3 when anything is flagged (for CI)")
    c.add_argument("--stage", help="stages to compare, e.g. 3 or 1,2 (default: those both runs have)")
    c.add_argument("--db")
    c.set_defaults(func=cmd_compare)
    ex = sub.add_parser("explore", help="open explore.ipynb live: JupyterLab, or a Voila dashboard (--dashboard)")
    ex.add_argument("--db", help="the metrics database (default: as `serpent ingest`)")
    ex.add_argument("--dashboard", action="store_true", help="Voila: the notebook's outputs and widgets, no code")
    ex.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default: a free one)")
    ex.set_defaults(func=cmd_explore)
    rep = sub.add_parser("reproduce", help="build a profile twice at different paths and compare every file")
    rep.add_argument("--profile", default="mini")
    rep.add_argument("--stage", help="stages to build, e.g. 1,2 (default: all of the profile's)")
    rep.add_argument("--dir", help="where both builds and the report go (default: runs/reproduce-<id>)")
    rep.add_argument("--fail-on-difference", action="store_true", help="exit 4 unless every file is identical")
    rep.add_argument("--seed-from", help="a work directory whose completed earlier stages both builds start from "
                                         "(with --stage 3: stages 1 and 2 are copied, not built)")
    rep.add_argument("--against", help="a work directory whose stages were built before, by `serpent run` say: build "
                                        "them once more, cleanly, at another path and compare with it (half the "
                                        "time; its earlier stages are the seed unless --seed-from says otherwise)")
    on = rep.add_mutually_exclusive_group()
    on.add_argument("--cluster", metavar="ADDRESS", help="a Dask scheduler: the two builds' worker builds go to two "
                    "different workers of it (reproducibility across machines)")
    on.add_argument("--workers", type=int, metavar="N", help="the same on a LocalCluster of N (at least 2) processes here")
    rep.add_argument("-q", "--quiet", action="store_true")
    rep.add_argument("--db")
    rep.set_defaults(func=cmd_reproduce)
    pk = sub.add_parser("pkg", help="install, remove, list or verify packages in a root")
    pk.add_argument("action", choices=["install", "remove", "list", "verify", "untrust"],
                    help="untrust ID: take a key out of the root's /etc/serpent/keys, on purpose (pkg verify knows)")
    pk.add_argument("names", nargs="*", help="package names (install, remove); a key id (untrust)")
    pk.add_argument("--root", help="the root directory")
    pk.add_argument("--repo", help="the repository (install; list without --root lists it)")
    pk.add_argument("--trust", action="append", default=[], metavar="FILE",
                    help="also trust this public key file or directory of them (install; besides the root's "
                         "/etc/serpent/keys and the local key store)")
    pk.add_argument("--insecure", action="store_true",
                    help="install without checking the index's signature (package files are still checked "
                         "against the index, and files against their manifests)")
    pk.add_argument("--allow-downgrade", action="store_true",
                    help="install from an index older than the newest this root accepted (install)")
    pk.set_defaults(func=cmd_pkg)
    k = sub.add_parser("key", help="the ed25519 keys that sign repository indexes")
    k.add_argument("action", choices=["generate", "list", "retire"],
                   help="generate: a new key that signs from now on; list; retire ID: move a key out of use")
    k.add_argument("id", nargs="?", help="the key to retire")
    k.add_argument("--keys", help="the key store (default: $SERPENT_KEYS or ~/.local/share/serpentlib/keys)")
    k.set_defaults(func=cmd_key)
    f = sub.add_parser("fetch", help="fetch and verify every source a profile needs")
    f.add_argument("--profile", default="mini")
    f.add_argument("--store", help="source store directory (default: ~/.cache/serpentlib/sources)")
    f.add_argument("--check", action="store_true",
                   help="fetch nothing: say where each pinned file can be had now (the store aside); exit 1 "
                        "naming each file that nothing but the store has")
    f.set_defaults(func=cmd_fetch)
    m = sub.add_parser("mirror", help="keep a team's own copy of a profile's sources")
    m.add_argument("action", choices=["export"])
    m.add_argument("dir", help="the directory to write (a profile's `mirrors:` can list it)")
    m.add_argument("--profile", default="mini")
    m.add_argument("--store", help="source store directory (default: ~/.cache/serpentlib/sources)")
    m.set_defaults(func=cmd_mirror)
    s0 = sub.add_parser("stage0", help="make (if missing) and verify the profile's seed root")
    s0.add_argument("--profile", default="mini")
    s0.add_argument("--recreate", action="store_true", help="make it anew even if present")
    s0.add_argument("--manifest", action="store_true", help="print what records keep of it")
    s0.set_defaults(func=cmd_stage0)
    return p


def _progress_only(record: logging.LogRecord) -> bool:
    """papermill's own chatter (cell banners, blank lines) out; the notebooks' progress lines in."""
    text = record.getMessage().rstrip()
    record.msg, record.args = text, ()
    return bool(text.strip()) and not text.lstrip().startswith(("Executing Cell", "Ending Cell", "Input Notebook", "Output Notebook",
                                               "Working directory", "Executing notebook with kernel"))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not args.verbose:
        logging.getLogger("papermill").addFilter(_progress_only)
    try:
        return args.func(args)
    except SerpentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted: every record made so far is in the run directory; no mount is left behind. "
              "The same command resumes: finished packages come from the cache, an unfinished build "
              "goes on in its tree", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
