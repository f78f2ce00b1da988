"""Named exceptions. Every user-facing problem is an ``InputError`` whose message is one line."""


class InternalSRError(Exception):
    """Base class of every error raised on purpose by the engine."""


class InputError(InternalSRError):
    """The user's input or settings cannot be processed; the message names the problem in one line."""


class Cancelled(InternalSRError):
    """The run was cancelled through the progress protocol; nothing was written at the output path."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)
