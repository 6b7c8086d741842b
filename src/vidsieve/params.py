"""Declarative hyper-parameter constraints with one error template.

Selectors declare ``_parameter_constraints = {"k": [Int(ge=1)], ...}``; a value must satisfy
at least one constraint of its list. The error reads, for example::

    The 'k' parameter of KTVSelector must be an int >= 1. Got 0 instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ParameterError


class Constraint:
    """One admissible kind of value."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


def _bound_text(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    parts = []
    if ge is not None:
        parts.append(f">= {ge}")
    if gt is not None:
        parts.append(f"> {gt}")
    if le is not None:
        parts.append(f"<= {le}")
    if lt is not None:
        parts.append(f"< {lt}")
    return " and ".join(parts)


def _in_bounds(v: float, ge: float | None, gt: float | None, le: float | None, lt: float | None) -> bool:
    return not (
        (ge is not None and v < ge)
        or (gt is not None and v <= gt)
        or (le is not None and v > le)
        or (lt is not None and v >= lt)
    )


@dataclass(frozen=True)
class Int(Constraint):
    """An integer (``bool`` excluded) within optional bounds."""

    ge: int | None = None
    gt: int | None = None
    le: int | None = None
    lt: int | None = None

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        return _in_bounds(int(value), self.ge, self.gt, self.le, self.lt)

    def describe(self) -> str:
        b = _bound_text(self.ge, self.gt, self.le, self.lt)
        return f"an int {b}".rstrip()


@dataclass(frozen=True)
class Float(Constraint):
    """A finite real number (ints accepted, ``bool`` excluded) within optional bounds."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        v = float(value)
        return math.isfinite(v) and _in_bounds(v, self.ge, self.gt, self.le, self.lt)

    def describe(self) -> str:
        b = _bound_text(self.ge, self.gt, self.le, self.lt)
        return f"a float {b}".rstrip()


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed set of values (usually strings)."""

    options: tuple[Any, ...]

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", tuple(options))

    def is_satisfied_by(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)

    def describe(self) -> str:
        return "one of {" + ", ".join(repr(o) for o in self.options) + "}"


@dataclass(frozen=True)
class NoneValue(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def describe(self) -> str:
        return "None"


@dataclass(frozen=True)
class Str(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and len(value) > 0

    def describe(self) -> str:
        return "a non-empty str"


@dataclass(frozen=True)
class Predicate(Constraint):
    """Escape hatch: an arbitrary check with its own description."""

    check: Callable[[Any], bool]
    text: str

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.text


def param_error(owner: str, name: str, expected: str, value: Any) -> ParameterError:
    """Build the one error message template used across the project."""
    return ParameterError(
        f"The '{name}' parameter of {owner} must be {expected}. Got {value!r} instead."
    )


def check_param(owner: str, name: str, value: Any, constraints: Sequence[Constraint]) -> None:
    """Raise :class:`ParameterError` unless ``value`` satisfies one of ``constraints``."""
    if any(c.is_satisfied_by(value) for c in constraints):
        return
    expected = " or ".join(c.describe() for c in constraints)
    raise param_error(owner, name, expected, value)


def validate_params(
    owner: str, params: Mapping[str, Any], constraints: Mapping[str, Sequence[Constraint]]
) -> None:
    """Check every parameter that has declared constraints."""
    for name, value in params.items():
        if name in constraints:
            check_param(owner, name, value, constraints[name])


def validate_fields(obj: Any, constraints: Mapping[str, Sequence[Constraint]]) -> None:
    """Check a config object's attributes (e.g. a dataclass in ``__post_init__``) against
    ``constraints``: the same one-template errors as selector parameters."""
    owner = type(obj).__name__
    for name, cons in constraints.items():
        check_param(owner, name, getattr(obj, name), cons)
