"""One error hierarchy; the CLI maps each class to a documented exit code.

Every message is meant to be shown as a single line to a user, so it names the
problem and the fix ("... : do X").
"""

from __future__ import annotations


class PromptoptError(Exception):
    """Base class: a user-facing problem with a one-line explanation."""

    exit_code = 1


class ConfigError(PromptoptError):
    """Bad arguments, task files, prompt files or run directories."""

    exit_code = 2


class DataError(PromptoptError):
    """Data files missing, unreadable or lacking fields."""

    exit_code = 3


class ModelError(PromptoptError):
    """A model could not be loaded or reached (server down, missing key, offline)."""

    exit_code = 4


class AuthError(ModelError):
    """The server rejected the API key (HTTP 401/403).

    Its own exit code because the fix differs from "server down" or "rate-limited"
    (both 4, worth retrying later): a CI job should fail loudly and not retry.
    """

    exit_code = 6


class BudgetExhausted(PromptoptError):
    """Raised inside a search when the next model call would exceed the budget.

    Strategies catch it and return their best-so-far result; it only reaches the
    user when nothing at all could be evaluated.
    """

    exit_code = 5


class GateFailed(PromptoptError):
    """An `eval` gate failed: a score below --min-score, or significantly below --baseline."""

    exit_code = 10


INTERRUPTED_EXIT_CODE = 130
"""Ctrl-C (128 + SIGINT, as shells report it); a search says how to resume."""


def did_you_mean(name: str, choices: list[str]) -> str:
    """Suffix for unknown-name errors: the closest known name, if any is close."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
