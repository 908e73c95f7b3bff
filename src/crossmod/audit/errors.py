"""Exceptions raised by the image auditor.

Owns: the two error types the CLI turns into a one-line message and exit code 2.
Imports: stdlib only.
"""

from __future__ import annotations


class ImageFormatError(Exception):
    """The image (or a file it was unpacked from) is not what it claims to be.

    `where` names the file and, when known, the byte offset of the first bad byte, so the
    one-line message points at the problem instead of at our code.
    """

    def __init__(self, what: str, where: str, offset: int | None = None) -> None:
        self.what = what
        self.where = where
        self.offset = offset
        at = f"{where} @ {offset:#x}" if offset is not None else where
        super().__init__(f"{at}: {what}")


class SymbolsError(ImageFormatError):
    """A symbol source is unusable or provably belongs to a different build than the image."""
