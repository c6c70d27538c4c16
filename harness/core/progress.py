"""How long steps tell a user what they are doing: a callable taking one line."""

from __future__ import annotations

from collections.abc import Callable

Say = Callable[[str], None]


def silent(_line: str) -> None:
    """A Say that says nothing, for callers that want no progress."""
