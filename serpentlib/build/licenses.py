"""Licenses as SPDX expressions, parsed against the SPDX license list (license-expression's).

A license is accepted only as the SPDX list spells it: every identifier on the list, exceptions
only after WITH, no deprecated or differently cased identifier (the message names the right
spelling), and the expression well formed.
"""

from __future__ import annotations

import re
from functools import lru_cache

from license_expression import ExpressionError, Licensing, get_spdx_licensing

_TOKEN = re.compile(r"[A-Za-z0-9.+:-]+")
_OPERATORS = {"AND", "OR", "WITH"}


@lru_cache(maxsize=1)
def spdx() -> Licensing:
    return get_spdx_licensing()


def license_problem(expression: str) -> str | None:
    """What is wrong with `expression` as an SPDX license expression, or None."""
    text = expression.strip()
    if not text:
        return "no license given"
    licensing = spdx()
    try:
        result = licensing.validate(text, strict=True)
    except (ExpressionError, AttributeError, TypeError):  # AttributeError: the parser's own slip on "MIT AND"
        return f"'{text}' is not a well-formed SPDX expression"
    if result.errors:
        unknown = [str(t) for t in result.invalid_symbols if t]
        if unknown and any(e.startswith("Unknown license key") for e in result.errors):
            return f"'{text}': {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not on the SPDX license list"
        return f"'{text}' is not a well-formed SPDX expression: {'; '.join(result.errors)}"
    written = [t for t in _TOKEN.findall(text) if t not in _OPERATORS]
    canonical = [t for t in _TOKEN.findall(result.normalized_expression or "") if t not in _OPERATORS]
    if written != canonical:
        return f"'{text}' is not spelt as the SPDX list spells it: write it as '{result.normalized_expression}'"
    return None


__all__ = ["license_problem", "spdx"]
