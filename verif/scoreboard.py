"""Scoreboard: compares what a design produced with what golden predicts, value and cycle."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Scoreboard"]


class Scoreboard:
    """Counts mismatches; logs the first ``max_logged`` of them in full.

    A bench ends with :meth:`assert_clean`, which fails unless every expected item arrived,
    nothing unexpected arrived, and no value or cycle differed.
    """

    def __init__(self, name: str, log: logging.Logger, *, max_logged: int = 10):
        self.name = name
        self.log = log
        self.max_logged = max_logged
        self.errors: list[str] = []
        self.checked = 0

    def error(self, message: str) -> None:
        if len(self.errors) < self.max_logged:
            self.log.error("%s: %s", self.name, message)
        self.errors.append(message)

    def compare(self, what: str, expected: Any, actual: Any) -> None:
        self.checked += 1
        if expected != actual:
            self.error(f"{what}: expected {expected}, got {actual}")

    def assert_clean(self, context: str = "") -> None:
        if self.errors:
            raise AssertionError(
                f"{self.name}: {len(self.errors)} mismatch(es) of {self.checked} checks "
                f"({context}); first: {self.errors[0]}"
            )
        if not self.checked:
            raise AssertionError(f"{self.name}: nothing was checked")
