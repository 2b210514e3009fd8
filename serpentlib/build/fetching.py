"""A profile's sources as a whole: fetch them all, say where each can be had now, export a mirror.

`check` does not count the local store: a file that only the store still holds has left the
world, and a warm store must not hide that (CI runs `serpent fetch --check`).
"""

from __future__ import annotations

import logging
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ..paths import RECIPES
from .profile import Profile
from .recipes import Source, load_recipes
from .seed import Seed
from .seed import ensure as ensure_seed
from ..hashes import sha256_file
from .sources import SourceStore

log = logging.getLogger(__name__)


def profile_sources(profile: Profile) -> list[tuple[str, Source]]:
    """(package, source) for every source of every package of every stage of `profile`, once each."""
    names: list[str] = []
    for n in profile.stage_numbers:
        names += [p for p in profile.parameters(n).get("packages", []) if p not in names]
    recipes_dir = Path(profile.common.get("recipes_dir") or RECIPES)
    return [(name, s) for name, r in load_recipes(recipes_dir, names).items() for s in r.sources]


def profile_store(profile: Profile, store_dir: str | None = None, seed: Seed | None = None) -> SourceStore:
    params = profile.common
    seed = seed or ensure_seed(params.get("seed") or {})
    where = store_dir or params.get("store_dir")
    return SourceStore(Path(where).resolve() if where else None, mirrors=params.get("mirrors") or [],
                       upstream=params.get("fetch_upstream", True), seed=seed)


def fetch_profile(profile: Profile, store_dir: str | None = None) -> pd.DataFrame:
    """Fetch and verify every source of every package in the profile; one row per source."""
    store = profile_store(profile, store_dir)
    rows = []
    for name, source in profile_sources(profile):
        got = store.fetch(source)
        rows.append({"package": name, "file": source.filename, "sha256": source.sha256[:16] + "...",
                     "bytes": got.size, "from": got.origin})
        log.info("%-16s %s ok (%s)", name, source.filename, got.origin)
    return pd.DataFrame(rows)


def _upstream(url: str, timeout: float = 10.0) -> str:
    """'answers' when the URL answers a HEAD request with success, else why not."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as resp:
            return "answers" if resp.status < 400 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})"


def _in_mirror(store: SourceStore, mirror: str, source: Source) -> bool:
    if "://" in mirror:
        return _upstream(mirror.rstrip("/") + "/" + source.filename) == "answers"
    found = store._from_mirror(mirror, source)  # noqa: SLF001 - the same lookup the fetch makes
    return found is not None and sha256_file(found) == source.sha256


def check(profile: Profile, store_dir: str | None = None) -> pd.DataFrame:
    """Per pinned file: whether the store holds it, and where else it can be had now (the profile's
    mirrors, upstream, Debian's index read anew); `available` is False where nothing but the store has it."""
    store = profile_store(profile, store_dir)
    store.refresh_index()
    sources = profile_sources(profile)
    seen: dict[str, dict] = {}
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip([s.sha256 for _, s in sources],
                           pool.map(lambda ps: _upstream(ps[1].url) if ps[1].url and not ps[1].repacked else "-",
                                    sources)))
    rows = []
    for name, source in sources:
        if source.sha256 in seen:
            rows.append({**seen[source.sha256], "package": name})
            continue
        path = store.path_for(source.sha256)
        mirrors = [m for m in store.mirrors if _in_mirror(store, m, source)]
        debian = (store.debian_version_with(source.debian.split("=", 1)[0], source.sha256) or "not in the index") \
            if source.debian else "-"
        upstream = answers[source.sha256]
        available = bool(mirrors) or upstream == "answers" or debian not in ("-", "not in the index")
        row = {"package": name, "file": source.filename, "store": "yes" if path.is_file() else "no",
               "mirrors": ", ".join(mirrors) or "-", "upstream": upstream, "debian": debian, "available": available,
               "fix": "" if available else
               ("bump the recipe to a version that is published, or keep a copy: `serpent mirror export DIR` "
                "(while the store still has it) and list DIR in the profile's `mirrors`")}
        seen[source.sha256] = row
        rows.append(row)
    return pd.DataFrame(rows)


def export_mirror(profile: Profile, dest: Path, store_dir: str | None = None) -> pd.DataFrame:
    """Copy every verified source of `profile` into `dest` under its file name, with SHA256SUMS:
    a directory a profile's `mirrors:` can list."""
    store = profile_store(profile, store_dir)
    dest.mkdir(parents=True, exist_ok=True)
    rows, sums = [], {}
    for name, source in profile_sources(profile):
        got = store.fetch(source)
        target = dest / source.filename
        if not (target.is_file() and sha256_file(target) == source.sha256):
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(got.path, tmp)
            tmp.replace(target)
        sums[source.filename] = source.sha256
        rows.append({"package": name, "file": source.filename, "bytes": got.size, "from": got.origin})
    (dest / "SHA256SUMS").write_text("".join(f"{sha}  {f}\n" for f, sha in sorted(sums.items())))
    return pd.DataFrame(rows)
