"""Counts in messages, said right: "1 more problem", "2 more problems"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun`` in the number ``n`` needs (``plural`` default: noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
