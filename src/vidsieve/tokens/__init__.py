"""Token selectors. Every public module here registers its selectors on import."""

from .base import TokenInput, TokenSelection, TokenSelector

__all__ = ["TokenInput", "TokenSelection", "TokenSelector"]
