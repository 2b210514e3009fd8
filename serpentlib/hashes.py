"""Hashes of data: the one digest every key (cache, seed, stage) is made with."""

from __future__ import annotations

import hashlib
import json


def digest(*parts: object) -> str:
    """sha256 over the JSON of each part (keys sorted), so equal data gives equal keys anywhere."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()
