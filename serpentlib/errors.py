"""The few exception types serpentlib raises. Each message says what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path


class SerpentError(Exception):
    """Base class: `str(err)` is the whole message, the hint included."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  hint: {hint}")


class RecipeError(SerpentError):
    """A recipe file is malformed: names the file and the key."""


class ProfileError(SerpentError):
    """A profile (params/*.yaml) or its notebook parameters are wrong."""


class CycleError(SerpentError):
    """Recipes depend on each other in a circle."""


class SourceError(SerpentError):
    """A source could not be had from any place it is looked for."""


class ChecksumError(SourceError):
    """A file's sha256 is not the one the recipe names; the file was removed."""


class UnsafeArchiveError(SourceError):
    """A tarball holds an absolute path, a `..` or a link out of its tree."""


class PatchError(SerpentError):
    """A patch lacks its headers or does not apply."""


class SandboxError(SerpentError):
    """The sandbox could not be set up (namespaces, mounts, chroot)."""


class BuildError(SerpentError):
    """A build phase exited non-zero."""

    def __init__(self, stage: str, package: str, phase: str, exit_code: int, log: Path | None) -> None:
        self.stage, self.package, self.phase, self.exit_code, self.log = stage, package, phase, exit_code, log
        tail = log_tail(log) if log else ""
        msg = f"{stage}: {package} failed in {phase} (exit {exit_code}); log: {log}"
        if tail:
            msg += "\n--- last lines of the log ---\n" + tail
        super().__init__(msg, "read the log above; fix the recipe or its patches and run again")


class DiskFullError(SerpentError):
    """A file system filled up while serpentlib itself wrote (extracting, merging, caching)."""


class CheckError(SerpentError):
    """One or more verification checks failed."""


def log_tail(path: Path | None, lines: int = 25) -> str:
    """The last `lines` lines of a log file, or '' if it is missing."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
