"""One registry per kind of component: frame selectors, token selectors, encoders, adapters.

Built-in components live in modules that the registry imports on first use (listed in
``_BUILTIN_PACKAGES``: every module of those packages is imported); third-party ones register
with the decorators below or through the ``vidsieve.plugins`` entry-point group.
"""

from __future__ import annotations

import fnmatch
import importlib
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


def _load_builtins() -> None:
    """Import every module of the built-in component packages once (no star-imports)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for pkg_name in _BUILTIN_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ImportError:  # pragma: no cover - a package missing from a broken install
            continue
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")
    for ep in entry_points(group="vidsieve.plugins"):
        ep.load()


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
                f"Unknown {self.kind} {name!r}. Available: {avail}."
            ) from None

    def create(self, name: str, **params: Any) -> T:
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as e:
            if "unexpected keyword" in str(e) or "positional argument" in str(e):
                allowed = ", ".join(cls._param_names()) or "(none)"  # type: ignore[attr-defined]
                raise UnknownNameError(
                    f"{cls.__name__} got an unknown parameter ({e}). Its parameters: {allowed}."
                ) from None
            raise

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
