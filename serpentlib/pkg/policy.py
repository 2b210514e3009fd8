"""The OS policies, checked over every package: one record per (policy, package).

A violation fails unless the profile lists an exception for it, with a reason:
    policy_exceptions: [{policy: no-setuid, package: busybox, path: /usr/bin/busybox, reason: ...}]
(`path` is a glob and may be left out). An exception that matches nothing is reported too, so
the list never outlives its reasons.
"""

from __future__ import annotations

import fnmatch
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError

from ..build.licenses import license_problem
from ..elf import elf_info, host_paths_in, is_elf, violations
from ..errors import ProfileError
from ..rows import CheckRecord, expected_failure
from .package import FileEntry, Manifest

DEFAULT_ALLOWED = ["/usr", "/etc", "/var"]
LAYOUT_PACKAGE = "filesystem"


@dataclass(frozen=True)
class Waiver:
    """An exception the profile grants: `policy` may be broken by `package` at `path`, for `reason`."""
    policy: str
    package: str
    path: str
    reason: str


def parse_exceptions(items: list[dict]) -> list[Waiver]:
    out = []
    for i, item in enumerate(items or []):
        if not isinstance(item, dict) or not item.get("policy") or not item.get("reason"):
            raise ProfileError(f"policy_exceptions[{i}]: needs at least `policy` and `reason`",
                               "write {policy: NAME, package: NAME, path: GLOB, reason: WHY}")
        if item["policy"] not in POLICIES:
            raise ProfileError(f"policy_exceptions[{i}]: unknown policy '{item['policy']}'",
                               f"known policies: {', '.join(POLICIES)}")
        unknown = set(item) - {"policy", "package", "path", "reason"}
        if unknown:
            raise ProfileError(f"policy_exceptions[{i}]: unknown keys {sorted(unknown)}", "use policy, package, path, reason")
        out.append(Waiver(item["policy"], item.get("package", "*"), item.get("path", "*"), item["reason"]))
    return out


@dataclass
class Package:
    """What a policy looks at: the manifest and where each file's content is."""
    manifest: Manifest
    where: dict[str, Path]


Violations = list[tuple[str, str]]  # (path, what is wrong)


def _elf_rule(rule: str) -> Callable[[Package, dict], Violations]:
    """A policy made of one of the ELF rules (elf.violations) over the package's ELF files."""
    def policy(p: Package, _ctx: dict) -> Violations:
        out = []
        for f in _elves(p):
            try:
                info = elf_info(p.where[f.path])
            except ELFError as exc:
                if rule == "musl-or-static":  # said once, by the first rule
                    out.append((f.path, f"unreadable ELF: {exc}"))
                continue
            out += [(f.path, problem) for r, problem in violations(info) if r == rule]
        return out
    policy.__doc__ = {"musl-or-static": "musl-linked or static ELF only", "no-rpath": "no RPATH; RUNPATH only to a library directory under /usr/lib"}[rule]
    return policy


def host_paths_policy(p: Package, ctx: dict) -> Violations:
    out = []
    for f in p.manifest.files:
        if f.type != "file":
            continue
        hits = host_paths_in(p.where[f.path].read_bytes(), ctx.get("forbidden", []))
        if hits:
            out.append((f.path, f"embeds {', '.join(hits)}"))
    return out


def tree_policy(p: Package, ctx: dict) -> Violations:
    """The layout package makes the tree: its top-level links and directories are the exception."""
    if p.manifest.name == LAYOUT_PACKAGE:
        return []
    allowed = ctx.get("allowed", DEFAULT_ALLOWED)
    return [(f.path, "outside " + ", ".join(allowed)) for f in p.manifest.files
            if not any(f.path == a or f.path.startswith(a.rstrip("/") + "/") for a in allowed)]


def world_writable_policy(p: Package, _ctx: dict) -> Violations:
    return [(f.path, f"mode {f.mode:o}") for f in p.manifest.files
            if f.type != "link" and f.mode & stat.S_IWOTH and not (f.type == "dir" and f.mode & stat.S_ISVTX)]


def setuid_policy(p: Package, _ctx: dict) -> Violations:
    return [(f.path, f"mode {f.mode:o}") for f in p.manifest.files
            if f.type == "file" and f.mode & (stat.S_ISUID | stat.S_ISGID)]


def libtool_policy(p: Package, _ctx: dict) -> Violations:
    return [(f.path, "libtool archive") for f in p.manifest.files if f.path.endswith(".la")]


def license_policy(p: Package, _ctx: dict) -> Violations:
    problem = license_problem(p.manifest.license)
    return [("", problem)] if problem else []


def owned_once_policy(p: Package, ctx: dict) -> Violations:
    owners: dict[str, list[str]] = ctx["owners"]
    return [(f.path, f"also in {', '.join(o for o in owners[f.path] if o != p.manifest.name)}")
            for f in p.manifest.files if f.type != "dir" and len(owners.get(f.path, [])) > 1]


def depends_policy(p: Package, ctx: dict) -> Violations:
    """Every library and interpreter a file needs is provided by some package."""
    unresolved = ctx["unresolved"].get(p.manifest.name, {})
    return [(files[0], f"needs {need}, which no package provides") for need, files in sorted(unresolved.items())]


POLICIES: dict[str, tuple[str, Callable[[Package, dict], Violations]]] = {
    "musl-or-static": ("ELF files link musl or nothing (no glibc, no other interpreter)", _elf_rule("musl-or-static")),
    "no-rpath": ("no RPATH; a RUNPATH only to a library directory under /usr/lib", _elf_rule("no-rpath")),
    "no-host-paths": ("no build-host or work-directory path embedded in any file", host_paths_policy),
    "allowed-tree": ("files only under the allowed directories", tree_policy),
    "no-world-writable": ("nothing world-writable (sticky directories aside)", world_writable_policy),
    "no-setuid": ("no setuid or setgid files", setuid_policy),
    "no-libtool-archives": ("no libtool .la files", libtool_policy),
    "license": ("an SPDX license expression", license_policy),
    "owned-once": ("no path claimed by two packages", owned_once_policy),
    "dependencies-resolved": ("every NEEDED library and #! interpreter is provided", depends_policy),
}


def _elves(p: Package) -> Iterable[FileEntry]:
    return (f for f in p.manifest.files if f.type == "file" and is_elf(p.where[f.path]))


def check_policies(packages: list[Package], exceptions: list[Waiver], *, allowed: list[str] | None = None,
                   forbidden: Iterable[str] = (), unresolved: dict | None = None, stage: str = "stage4") -> list[CheckRecord]:
    owners: dict[str, list[str]] = {}
    for p in packages:
        for f in p.manifest.files:
            if f.type != "dir":
                owners.setdefault(f.path, []).append(p.manifest.name)
    ctx = {"allowed": allowed or DEFAULT_ALLOWED, "forbidden": list(forbidden), "owners": owners,
           "unresolved": unresolved or {}}
    used: set[Waiver] = set()
    records = []
    for policy, (_what, fn) in POLICIES.items():
        for p in packages:
            name = p.manifest.name
            excused, failing = [], []
            for path, problem in fn(p, ctx):
                hit = next((e for e in exceptions if e.policy == policy and fnmatch.fnmatch(name, e.package)
                            and fnmatch.fnmatch(path, e.path)), None)
                if hit:
                    used.add(hit)
                    excused.append((path, problem, hit.reason))
                else:
                    failing.append(f"{path}: {problem}" if path else problem)
            detail = "; ".join(failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
            if failing or not excused:
                records.append(CheckRecord(stage, f"policy:{policy}", name, not failing, detail or "ok"))
                continue
            # Broken, and the profile says why that is accepted: an expected failure, not a pass.
            shown = "; ".join(f"{path}: {problem}" for path, problem, _ in excused[:3])
            record = CheckRecord(stage, f"policy:{policy}", name, False, f"{len(excused)} excused: {shown}")
            records.append(expected_failure(record, "; ".join(dict.fromkeys(why for *_, why in excused))))
    for e in exceptions:
        if e not in used:
            records.append(CheckRecord(stage, f"policy:{e.policy}", e.package, False,
                                       f"the exception for {e.path} ({e.reason}) matches nothing: remove it from the profile"))
    return records


__all__ = ["POLICIES", "Package", "check_policies", "parse_exceptions"]
