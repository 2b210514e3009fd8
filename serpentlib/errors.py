"""The few exception types serpentlib raises. Each message says what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path


class SerpentError(Exception):
    """Base class: `str(err)` is the whole message, the hint included. `exit_code` is what the
    `serpent` command exits with (`exit_status`): 2 for what was asked wrongly or could not start,
    1 for a build or a stage that ran and failed."""

    exit_status = 2

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


class ContainmentError(SerpentError):
    """A tree would be written through a link that leads out of it."""


class SandboxError(SerpentError):
    """The sandbox could not be set up (namespaces, mounts, chroot)."""


class BuildError(SerpentError):
    """A build phase exited non-zero (its own exit code: `exit_code`)."""

    exit_status = 1

    def __init__(self, stage: str, package: str, phase: str, exit_code: int, log: Path | None) -> None:
        self.stage, self.package, self.phase, self.exit_code, self.log = stage, package, phase, exit_code, log
        tail = log_tail(log) if log else ""
        msg = f"{stage}: {package} failed in {phase} (exit {exit_code}); log: {log}"
        if tail:
            msg += "\n--- last lines of the log ---\n" + tail
        super().__init__(msg, "read the log above; fix the recipe or its patches and run again")


class RemoteError(SerpentError):
    """A cluster's worker could not build, or what it sent back is not what it says."""


class DiskFullError(SerpentError):
    """A file system filled up while serpentlib itself wrote (extracting, merging, caching)."""


class CheckError(SerpentError):
    """One or more verification checks failed."""


class SeedError(SerpentError):
    """Stage 0 could not be made, or the seed on disk is not the one its manifest describes."""


class PackageError(SerpentError):
    """A package file, manifest or repository index is malformed or does not match."""


class ConflictError(PackageError):
    """Two packages, or a package and the root, claim one path."""


class TrustError(SerpentError):
    """A signature is missing, made by a key nobody trusts, or does not match."""


class StageFailed(SerpentError):
    """A stage notebook failed; carries the failing package, phase and log when known."""

    exit_status = 1

    def __init__(self, stage: int, notebook: Path, failed: dict | None, error: str) -> None:
        self.stage, self.notebook, self.failed = stage, notebook, failed
        if failed:
            msg = (f"stage {stage} failed: {failed['package']} in {failed['phase']} "
                   f"(exit {failed['exit_code']}); log: {failed['log']}")
            tail = log_tail(Path(failed["log"]), 20)
            if tail:
                msg += "\n--- last lines of the log ---\n" + tail
        else:
            msg = f"stage {stage} failed: {error.strip() or 'unknown error'}"
        super().__init__(msg, f"the executed notebook shows the failing cell: {notebook}")


class Cancelled(Exception):
    """A package not built because another build of its stage failed or the stage was interrupted."""


class Interrupted(KeyboardInterrupt):
    """^C or SIGTERM stopped a sandboxed command; `record` is what it used until then (exit 130)."""

    def __init__(self, record: object) -> None:  # a rows.PhaseRecord (rows imports this module)
        super().__init__()
        self.record = record


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
