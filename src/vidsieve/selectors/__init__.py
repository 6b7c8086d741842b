"""Frame selectors. Every public module here registers its selectors on import."""

from .base import FrameSelector, SelectOutput

__all__ = ["FrameSelector", "SelectOutput"]
