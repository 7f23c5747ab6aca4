"""``validate=``: any callable that takes the decoded JSON and returns a value (or
raises), or a pydantic model class (used through ``model_validate``; pydantic is not a
dependency of this package)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

Validator = Callable[[Any], T] | type[T]


def as_parser(validate: Validator[T] | None) -> Callable[[Any], Any]:
    """A one-argument function applying ``validate`` (the identity when it is None)."""
    if validate is None:
        return _identity
    model_validate = getattr(validate, "model_validate", None)
    if isinstance(validate, type) and callable(model_validate):
        return model_validate  # type: ignore[no-any-return]
    return validate


def _identity(value: Any) -> Any:
    return value
