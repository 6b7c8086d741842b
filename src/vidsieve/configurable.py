"""scikit-learn-style hyper-parameter handling shared by selectors and encoders.

A subclass's ``__init__`` takes keyword-only hyper-parameters, stores each under its own name
and calls ``self._validate_params()``; nothing else. ``get_params`` and ``repr`` come from the
signature, so ``eval(repr(obj))`` rebuilds an equal object.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

from .params import Constraint, validate_params


class Configurable:
    """Base of every object built from keyword-only hyper-parameters."""

    #: registry name, set by the ``register_*`` decorators.
    name: ClassVar[str] = ""
    #: one-line description shown by ``vidsieve list``.
    description: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, Sequence[Constraint]]] = {}

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters as passed to the constructor."""
        return {n: getattr(self, n) for n in self._param_names()}

    def _validate_params(self) -> None:
        validate_params(type(self).__name__, self.get_params(), self._parameter_constraints)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))
