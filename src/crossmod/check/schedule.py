"""Replayable schedules: a counterexample as one short ASCII token.

Owns: encoding and decoding of (format version, protocol, variant, knobs, choice indices,
and for a lasso the index where its cycle starts).
The token is zlib-compressed JSON in URL-safe base64: copyable from a terminal, and it names
everything needed to rebuild the system, so `crossmod replay TOKEN` needs nothing else.
Imports: stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from typing import Any

VERSION = 1


class ScheduleError(ValueError):
    """A token that is not a crossmod schedule, or one of another format version."""


@dataclass(frozen=True)
class Schedule:
    protocol: str
    variant: str
    knobs: dict[str, Any]
    choices: tuple[int, ...]
    cycle_start: int | None = None  # a liveness lasso: choices from here on repeat forever

    def encode(self) -> str:
        doc: dict[str, Any] = {"v": VERSION, "p": self.protocol, "var": self.variant,
                               "k": self.knobs, "c": list(self.choices)}
        if self.cycle_start is not None:
            doc["cyc"] = self.cycle_start
        raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)
        return "cm1-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Schedule:
        if not token.startswith("cm1-"):
            raise ScheduleError(f"not a crossmod schedule token: {token[:20]!r}")
        body = token[4:]
        try:
            raw = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ScheduleError("corrupt schedule token (not a schedule's fields)")
            if doc.get("v") != VERSION:
                raise ScheduleError(f"schedule format {doc.get('v')} (this crossmod reads "
                                    f"{VERSION})")
            if not (isinstance(doc.get("p"), str) and isinstance(doc.get("var"), str)
                    and isinstance(doc.get("k"), dict) and isinstance(doc.get("c"), list)
                    and all(isinstance(k, str) for k in doc["k"])):
                raise ScheduleError("corrupt schedule token (not a schedule's fields)")
            cyc = doc.get("cyc")
            if cyc is not None and not (type(cyc) is int and 0 <= cyc < len(doc["c"])):
                raise ScheduleError("corrupt schedule token (the cycle starts outside it)")
            return cls(doc["p"], doc["var"], dict(doc["k"]), tuple(int(c) for c in doc["c"]),
                       cyc)
        except (binascii.Error, zlib.error, ValueError, KeyError, TypeError) as e:
            if isinstance(e, ScheduleError):
                raise
            raise ScheduleError(f"corrupt schedule token ({e.__class__.__name__})") from None
