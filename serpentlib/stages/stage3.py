"""Stage 3: native builds inside a chroot, with stage 2 bind-mounted read-only at /serpent.

As in the seed: the root starts empty; the intermediate musl is built on the host by the
stage1 toolchain and installed into it; then every package is extracted and patched on the
host and configured, built and installed inside the chroot, by /serpent/usr/bin/bash with
/usr/bin ahead of /serpent/usr/bin on PATH, so each install replaces a /serpent tool. It ends
with the final compiler (tcc or clang, see compilers.py) and its checks.
"""

from __future__ import annotations

import logging
import shutil

from ..build.profile import StageParams
from ..build.sandbox import Bind
from ..errors import SerpentError
from ..pkg import flags as tuning
from ..rows import CheckRecord, Step
from . import verify
from .common import StageResult, StageRun, begin, stage_function
from .compilers import FinalCompiler, final_compiler, link_serpent_tools
from .layout import Chroot, make_root_layout, root_sandbox, write_base_files
from .relink import check_names, relink
from .stage2 import cross_env, stage1_env, toolchain

log = logging.getLogger(__name__)


def probe_flags(st: StageRun, compiler: FinalCompiler, flags: list[tuning.Flag]) -> tuple[str, list[tuning.FlagResult]]:
    """Try each tuning flag with stage 2's compiler (the one stage 3 starts with, and the
    version it ends with) in stage 2's root; saved to <work>/stage3/flags.json for stage 4."""
    where = st.work / "flag-probe"
    where.mkdir()
    (where / "probe.c").write_text(tuning.PROBE_C)
    script = tuning.probe_script(flags, compiler.name, "/probe") + f"{compiler.version_command} > version.txt 2>&1\n"
    sandbox = root_sandbox(st.base / "stage2" / "root", shell="/usr/bin/bash",
                           binds=[Bind(where, "/probe", readonly=False)])
    rec = sandbox.run(script, cwd="/", log=st.logs / "flag-probe.log", step=Step("stage3", phase="probe"))
    if rec.exit_code != 0:
        raise SerpentError(f"stage3: the flag probe failed (exit {rec.exit_code})", f"see {rec.log}")
    version = (where / "version.txt").read_text().strip()
    results = tuning.judge(flags, where)
    tuning.save(results, version, st.work / "flags.json")
    shutil.rmtree(where)
    return version, results


@stage_function
def stage3(params: StageParams) -> StageResult:
    """Build the profile's set natively in the stage3 chroot, then verify the final compiler.
    `cflags` applies to what is built on the host (the intermediate musl); `flags` (tuning
    groups) to what the chroot's `compiler` (tcc or clang) builds, each flag probed first.
    `fixpoint`: the final compiler rebuilds itself and must give the same bytes; `lit_suites`:
    LLVM's own test suites run in the chroot (clang only)."""
    compiler = final_compiler(params.compiler)
    flag_list = tuning.parse_flags(params.flags or {})
    check_names("stage3", params.packages, params.relink)
    st = begin("stage3", params, after=("stage1", "stage2"))
    bindir = toolchain(st.base)
    chroot = Chroot(st.work / "root", st.work / "build", st.base / "stage2" / "root")
    make_root_layout(chroot.root)
    write_base_files(chroot.root)
    link_serpent_tools(chroot.root, compiler)  # as in the seed: /usr/bin/sh is stage2's dash at first
    chroot.builds.mkdir(parents=True, exist_ok=True)
    env = compiler.env(serpent=True)
    _version, results = probe_flags(st, compiler, flag_list)
    if flag_list:
        env.update(tuning.build_env(results, compiler.prefix_map))
    # On the host, a build sees what stage 2's builds see: the same build in both stages is one.
    host_env = {**cross_env(bindir, params.target, params.cflags, st.seed.clang["triple"]),
                **stage1_env(st.base, st.seed.clang["version"], params.cflags)}
    env["TARGET"] = params.target
    ctx = st.context(chroot.root, chroot.sandbox(env), env, inside=chroot.inside,
                     host_sandbox=st.seed_sandbox(f"{bindir}:/usr/bin:/bin"), host_env=host_env,
                     keep_trees=compiler.keep_trees)
    st.build(ctx, params.packages)
    relinked = relink(st, ctx, params.relink)
    checks = st.cached_checks()
    if checks is None:
        checks = relinked + verify_stage3(st, chroot, compiler, env)
    return st.finish(checks)


def verify_stage3(st: StageRun, chroot: Chroot, compiler: FinalCompiler, build_env: dict[str, str]) -> list[CheckRecord]:
    """The root's ELF files, what replaced /serpent, the tools on PATH, then without /serpent:
    the recipes' checks and the final compiler's own (its fixed point, its test suite)."""
    logs, root = st.logs / "checks", chroot.root
    checks = verify.check_root_closure("stage3", root)
    checks += verify.check_replaced("stage3", chroot.serpent, root)
    checks += verify.check_elf_hygiene("stage3", root, extra_forbidden=[str(st.base), "/serpent"])
    tools = ["make", "bash", compiler.name, "sh", *compiler.tools]
    checks += verify.check_in_root("stage3", chroot.sandbox(compiler.env(serpent=True)), {
        "tools resolve to /usr/bin": (f"for t in {' '.join(tools)}; do command -v $t; done",
                                      "\n".join(f"/usr/bin/{t}" for t in tools)),
    }, logs)
    # Without /serpent from here on: the root must stand alone.
    alone = chroot.sandbox(compiler.env(), serpent=False)
    checks += verify.check_in_root("stage3", alone, st.recipe_checks(st.params.packages), logs)
    return checks + compiler.checks(st, chroot, alone, build_env)
