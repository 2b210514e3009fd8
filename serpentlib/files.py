"""Writing a file so that readers see the old one or the new one, never half of it."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str | bytes) -> Path:
    """Write to `<path>.partial`, flush it to disk, and rename it over `path`."""
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        fh.write(text.encode() if isinstance(text, str) else text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


__all__ = ["write_atomic"]
