"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, bad settings, an unreachable endpoint.

    The message must name the problem precisely (file, line, field, allowed values).
    """

    exit_code: int = 2


class ConfigError(UserError):
    """Settings that cannot be used: a malformed ``.env`` line, an unknown provider, a bad value."""


class Interrupted(UserError):
    """The user stopped a run (Ctrl-C); what it had committed is kept and it can be resumed."""

    exit_code = 130
