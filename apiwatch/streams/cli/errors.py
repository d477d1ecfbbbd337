"""The one error type the CLI turns into a single line on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

from apiwatch.settings import ConfigError, describe_validation_error


class UserError(Exception):
    """Something the user can fix; the message says what, in one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextmanager
def user_errors(what: str = "") -> Iterator[None]:
    """Turn the known failure types of loading input into :class:`UserError`."""
    prefix = f"{what}: " if what else ""
    try:
        yield
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc, prefix)) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{prefix}{exc}") from None
