"""Exceptions raised for user mistakes. Every message says what was wrong and what to do."""

from __future__ import annotations


class VidsieveError(Exception):
    """Base class of every error vidsieve raises on purpose."""


class ParameterError(VidsieveError, ValueError):
    """A hyper-parameter or argument has the wrong type or value."""


class EmptyInputError(VidsieveError, ValueError):
    """A selector was given no frames or no tokens."""


class VideoError(VidsieveError):
    """Base class of video reading errors."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video path does not exist."""


class VideoDecodeError(VideoError, ValueError):
    """The file is not a video, is truncated or corrupt, or has no frames."""


class FrameIndexError(VideoError, IndexError):
    """Frames were requested beyond the end of the video."""


class UnknownNameError(VidsieveError, KeyError):
    """A registry lookup failed. ``str()`` gives the plain message, not a repr."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ContractError(VidsieveError, RuntimeError):
    """A selector broke the selection contract (a bug in that selector, not user input)."""
