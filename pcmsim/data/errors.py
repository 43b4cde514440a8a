"""The one exception raised for a bad, missing or unverifiable data file."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file is missing, corrupt, malformed, unsafe or fails its checksum.

    The message is a single line of the form ``<file>: <problem>; expected <what>``, so that it can
    be shown to a user as is. Line breaks in the pieces that make up a message (e.g. the text of an
    underlying parser error) are folded into spaces.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
