"""One registry per kind of component: frame selectors, token selectors, encoders, adapters.

Built-in components live in modules that the registry imports on first use (listed in
``_BUILTIN_PACKAGES``: every module of those packages is imported); third-party ones register
with the decorators below or through the ``vidsieve.plugins`` entry-point group.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")

_BUILTIN_PACKAGES = (
    "vidsieve.selectors",
    "vidsieve.tokens",
    "vidsieve.encoders",
    "vidsieve.adapters",
)
_loaded = False
#: module name -> "ExceptionType: message" for built-in or plugin modules that failed to import
#: (reported in unknown-name errors and by ``vidsieve list``; retried on the next lookup).
import_failures: dict[str, str] = {}


def _load_builtins() -> None:
    """Import every module of the built-in component packages (no star-imports).

    A module that fails to import is recorded in :data:`import_failures` and does not stop the
    others; the registry counts as loaded only once every module imported, so a transient
    failure is retried and never leaves the registry empty for the rest of the process.
    """
    global _loaded
    if _loaded:
        return
    failures: dict[str, str] = {}
    for pkg_name in _BUILTIN_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except Exception as e:
            failures[pkg_name] = f"{type(e).__name__}: {e}"
            continue
        for mod in pkgutil.iter_modules(pkg.__path__):
            if mod.name.startswith("_"):
                continue
            name = f"{pkg_name}.{mod.name}"
            try:
                importlib.import_module(name)
            except Exception as e:
                failures[name] = f"{type(e).__name__}: {e}"
    for ep in entry_points(group="vidsieve.plugins"):
        try:
            ep.load()
        except Exception as e:
            failures[f"plugin {ep.name} ({ep.value})"] = f"{type(e).__name__}: {e}"
    import_failures.clear()
    import_failures.update(failures)
    _loaded = not failures


def _failure_note() -> str:
    if not import_failures:
        return ""
    items = "; ".join(f"{m}: {e.splitlines()[0] if e else e}" for m, e in sorted(import_failures.items()))
    return f" ({len(import_failures)} module(s) failed to import: {items})"


class Registry(Generic[T]):
    """Name -> class mapping with pattern listing and a helpful unknown-name error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def register(self, name: str, description: str = "") -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"A {self.kind} named {name!r} is already registered.")
            cls.name = name  # type: ignore[attr-defined]
            if description:
                cls.description = description  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return deco

    def get(self, name: str) -> type[T]:
        _load_builtins()
        try:
            return self._items[name]
        except KeyError:
            avail = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}. Available: {avail}.{_failure_note()}"
            ) from None

    def create(self, name: str, **params: Any) -> T:
        """An instance of the component registered as ``name`` with keyword ``params``.

        Unknown parameter names are refused before the constructor runs (with the list of the
        component's parameters); errors raised inside the constructor propagate unchanged.
        """
        cls = self.get(name)
        try:
            inspect.signature(cls).bind(**params)
        except TypeError as e:
            names = getattr(cls, "_param_names", None)
            allowed = ", ".join(names()) if callable(names) else ""
            raise UnknownNameError(
                f"{cls.__name__} got an unknown parameter ({e}). Its parameters: {allowed or '(none)'}."
            ) from None
        return cls(**params)

    def list(self, pattern: str = "*") -> list[str]:
        _load_builtins()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def describe(self, pattern: str = "*") -> dict[str, str]:
        return {n: getattr(self._items[n], "description", "") for n in self.list(pattern)}

    def __contains__(self, name: str) -> bool:
        _load_builtins()
        return name in self._items


FRAME_SELECTORS: Registry[Any] = Registry("frame selector")
TOKEN_SELECTORS: Registry[Any] = Registry("token selector")
ENCODERS: Registry[Any] = Registry("frame encoder")
ADAPTERS: Registry[Any] = Registry("model adapter")


def register_selector(name: str, description: str = "") -> Callable[[type[T]], type[T]]:
    """Class decorator: register a :class:`~vidsieve.selectors.base.FrameSelector`."""
    return FRAME_SELECTORS.register(name, description)


def register_token_selector(name: str, description: str = "") -> Callable[[type[T]], type[T]]:
    """Class decorator: register a :class:`~vidsieve.tokens.base.TokenSelector`."""
    return TOKEN_SELECTORS.register(name, description)


def register_encoder(name: str, description: str = "") -> Callable[[type[T]], type[T]]:
    """Class decorator: register a :class:`~vidsieve.encoders.base.FrameEncoder`."""
    return ENCODERS.register(name, description)


def register_adapter(name: str, description: str = "") -> Callable[[type[T]], type[T]]:
    """Class decorator: register an HF model adapter."""
    return ADAPTERS.register(name, description)


def create_selector(name: str, **params: Any) -> Any:
    return FRAME_SELECTORS.create(name, **params)


def list_selectors(pattern: str = "*") -> list[str]:
    return FRAME_SELECTORS.list(pattern)


def create_token_selector(name: str, **params: Any) -> Any:
    return TOKEN_SELECTORS.create(name, **params)


def list_token_selectors(pattern: str = "*") -> list[str]:
    return TOKEN_SELECTORS.list(pattern)


def create_encoder(name: str, **params: Any) -> Any:
    return ENCODERS.create(name, **params)


def list_encoders(pattern: str = "*") -> list[str]:
    return ENCODERS.list(pattern)
