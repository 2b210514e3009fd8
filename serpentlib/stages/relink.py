"""The relink, as the seed defines it for systemd: util-linux is built before systemd exists (its
libraries only), systemd against it, dbus against systemd; then each is built again, in the same
order, against the root that now holds all of them (util-linux with libsystemd and libudev, and
its programs). Each second pass is a build of its own (`<name>-relink`, with the recipe's
`relink:` overrides); it replaces the first pass as the package's output, and a record per
package says which files it replaced and that none of the first pass is left."""

from __future__ import annotations

from pathlib import Path

from ..build.phases import StageContext
from ..elf import is_elf
from ..errors import SerpentError
from ..files import walk
from ..hashes import sha256_file
from ..rows import CheckRecord
from .common import StageRun


def check_names(stage: str, packages: list[str], names: list[str]) -> None:
    """Before anything builds: the relink names only packages of the stage."""
    unbuilt = [n for n in names if n not in packages]
    if unbuilt:
        raise SerpentError(f"{stage}: relink names {unbuilt}, which the stage does not build",
                           "list in `relink:` only packages of the stage's `packages:`")


def relink(st: StageRun, ctx: StageContext, names: list[str]) -> list[CheckRecord]:
    """Build each of `names` a second time (see the module); return one `relink` record each."""
    if not names:
        return []
    first = {n: st.keys[n] for n in names}
    passes = {f"{n}-relink": r.relinked() for n, r in st.recipes(names).items()}
    st.build(ctx, list(passes), recipes=passes, after_all=True)
    records = []
    for name in names:
        second = st.keys.pop(f"{name}-relink")
        st.keys[name], st.outputs[name] = second, st.outputs.pop(f"{name}-relink")
        st.inputs[name] = st.inputs.pop(f"{name}-relink")
        st.compilers[name] = st.compilers.pop(f"{name}-relink", "")
        records.append(compare_passes(st.name, name, _dest(st, first[name], name), _dest(st, second, f"{name}-relink"),
                                      ctx.install_root))
    return records


def _dest(st: StageRun, key: str, name: str) -> Path:
    """The installed tree of a build, from the build cache (checked against its digest)."""
    hit = st.cache.get(key)
    if hit is None:
        raise SerpentError(f"{st.name}: the build of {name} ({key[:12]}) is not in {st.cache.root}",
                           "run the stage again: it builds what is missing")
    return hit[0]


def _files(tree: Path) -> dict[str, Path]:
    return {e.rel: e.path for e in walk(tree) if not e.is_dir}


def _same(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return a.is_symlink() and b.is_symlink() and a.readlink() == b.readlink()
    return a.is_file() and b.is_file() and sha256_file(a) == sha256_file(b)


def compare_passes(stage: str, name: str, first: Path, second: Path, root: Path) -> CheckRecord:
    """What the second pass (`second`, its installed tree) did to the first's (`first`) in `root`:
    the ELF files it replaced (changed or the same bytes), the files it added; it fails when a file
    of the first pass is not the second's too (left behind) or a file of the second is not what
    the root holds (something else replaced it)."""
    one, two = _files(first), _files(second)
    left = sorted(set(one) - set(two))
    elf = sorted(rel for rel in set(one) & set(two) if not two[rel].is_symlink() and is_elf(two[rel]))
    changed = [rel for rel in elf if not _same(one[rel], two[rel])]
    added = sorted(set(two) - set(one))
    added_elf = [rel for rel in added if not two[rel].is_symlink() and is_elf(two[rel])]
    stale = sorted(rel for rel, path in two.items() if not _same(path, root / rel))
    problems = []
    if left:
        problems.append(f"files of the first pass left behind (the second has none of them): {', '.join(left)}")
    if stale:
        problems.append(f"files of the second pass the root does not hold as it made them: {', '.join(stale)}")
    detail = (f"the second pass installed {len(two)} files, {len(added)} more than the first; of the first "
              f"pass's {len(elf)} ELF files it replaced, {len(changed)} changed"
              + (f" ({', '.join(changed)})" if changed else "")
              + f" and {len(elf) - len(changed)} are the same bytes"
              + (f"; added ELF files: {', '.join(added_elf)}" if added_elf else ""))
    return CheckRecord(stage, "relink", name, not problems, "; ".join(problems + [detail]))
