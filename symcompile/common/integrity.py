"""Seals on generated modules: a module edited after generation is never used silently.

Every generated module carries ``SOURCE_HASH = '<16 hex digits>'``: the SHA-256 of its own
text with that value left empty. Editing any byte (a statement, a comment, the hash)
breaks the seal. Standard library only: the runtime checks seals without SymPy.
"""

from __future__ import annotations

import hashlib
import re

UNSEALED = "SOURCE_HASH = ''"
_SEAL = re.compile(r"^SOURCE_HASH = '([0-9a-f]*)'$", re.MULTILINE)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def seal(source: str) -> str:
    """`source` (which holds the line ``SOURCE_HASH = ''`` once) with its hash filled in."""
    if source.count(UNSEALED) != 1:
        raise ValueError("a generated module must hold exactly one unsealed SOURCE_HASH line")
    return source.replace(UNSEALED, f"SOURCE_HASH = '{_digest(source)}'")


def is_intact(text: str) -> bool:
    """Whether `text` is a sealed module exactly as it was generated."""
    seals = _SEAL.findall(text)
    if len(seals) != 1:
        return False
    return _digest(_SEAL.sub(UNSEALED, text)) == seals[0]


def is_sealed(text: str) -> bool:
    """Whether `text` carries a seal at all (modules from before seals do not)."""
    return bool(_SEAL.search(text))
