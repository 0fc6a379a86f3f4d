"""The project's exception hierarchy: every error says what was wrong and where."""

from __future__ import annotations


class AgentOpsError(Exception):
    """Base of every error raised on purpose by this project."""


class ConfigError(AgentOpsError):
    """A setting (flag, environment variable, file) is missing or invalid."""


class InvalidField(AgentOpsError):
    """A payload field is missing, of the wrong type or out of range.

    `field` is a dotted path (``latencyMs.buckets``) so that a user can find it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
