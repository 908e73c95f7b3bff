"""Replayable schedules: a counterexample as one short ASCII token, fingerprinted.

Owns: the token format -- (protocol, variant, resolved parameters, the fingerprint of the
model, choice indices) -- with `record_token(system, choices)` and `decode_for(system,
token)`. Imports: machine.fingerprint, machine.system.

A token is `cm2-` and zlib-compressed JSON in URL-safe base64: copyable from a terminal.
It names everything needed to rebuild a catalogue system (`crossmod replay TOKEN` needs
nothing else) and, for any system, the fingerprint of the model it was recorded on
(machine/fingerprint.py): choice indices replayed on another model would silently run
another interleaving, so a token that does not fit is refused, naming what differs --
the parameters, or the configuration, the routine code or the machine model.

    {"v": 2, "p": protocol, "var": variant, "params": {name: value, ...},
     "fp": {"config": hex, "code": hex, "machine": hex}, "c": [choice, ...]
     [, "cyc": index]}

`cyc`, for a lasso (a liveness counterexample), is the index of the choice its cycle starts
at: the choices from there on repeat forever.

Every field is checked for its exact shape: a token is input, and a damaged or foreign one
gets a one-line ScheduleError, never another exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crossmod.machine.fingerprint import PARTS, Fingerprint, fingerprint
from crossmod.machine.system import System

VERSION = 2
PREFIX = f"cm{VERSION}-"
MAX_JSON = 1 << 20  # decompressed bytes: a real token is a few hundred
MAX_CHOICES = 1 << 20  # choices in one schedule (the step bound is 5,000 by default)
MAX_CHOICE = 1 << 16  # a choice indexes the moves enabled in one state: a few dozen
_HEX = re.compile(r"[0-9a-f]{16}")
_FIELDS = {"v", "p", "var", "params", "fp", "c"}
_OPTIONAL = {"cyc"}


class ScheduleError(ValueError):
    """A token that is not a crossmod schedule, of another format version, or recorded on
    another model than the one it is replayed on."""


@dataclass(frozen=True)
class Schedule:
    """One recorded schedule: what it was recorded on and the choices to make."""

    protocol: str
    variant: str
    params: dict[str, Any]
    fingerprint: Fingerprint
    choices: tuple[int, ...]
    cycle_start: int | None = None  # a lasso: the choices from here on repeat forever

    def encode(self) -> str:
        doc: dict[str, Any] = {"v": VERSION, "p": self.protocol, "var": self.variant,
                               "params": self.params, "fp": self.fingerprint.to_json(),
                               "c": list(self.choices)}
        if self.cycle_start is not None:
            doc["cyc"] = self.cycle_start
        raw = zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 9)
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Schedule:
        """The schedule a token holds, its shape checked (not yet that it fits a model)."""
        return _from_doc(_document(token))

    def check_fits(self, system: System) -> None:
        """Refuse, naming the first thing that differs, unless `system` is the model this
        schedule was recorded on."""
        if self.protocol != system.name:
            raise ScheduleError(f"the token was recorded on protocol {self.protocol!r}, not "
                                f"{system.name!r}")
        if self.variant != system.variant:
            raise ScheduleError(f"the token was recorded on variant {self.variant!r} of "
                                f"{self.protocol}, not {system.variant!r}")
        params = plain_params(system.params)
        if _canonical(self.params) != _canonical(params):  # exactly: 1 is not true
            raise ScheduleError(f"the token was recorded with other parameters: "
                                f"{_param_diff(self.params, params)}")
        now = fingerprint(system.config)
        parts = self.fingerprint.differs(now)
        if parts:
            named = [PARTS[p] for p in parts]
            what = ", ".join(named[:-1]) + " and " * (len(named) > 1) + named[-1]
            raise ScheduleError(f"the model changed since the token was recorded: {what} "
                                f"(fingerprint {_fp_diff(self.fingerprint, now, parts)}); "
                                "re-run `crossmod check` to record a new one")


def record_token(system: System, choices: Sequence[int], cycle_start: int | None = None
                 ) -> str:
    """The token of `choices` (indices into each state's enabled moves) on `system`; for a
    lasso, `cycle_start` is the index of the choice its cycle starts at."""
    return Schedule(system.name, system.variant, plain_params(system.params),
                    fingerprint(system.config), tuple(choices), cycle_start).encode()


def decode_for(system: System | None, token: str) -> Schedule:
    """The schedule in `token`; with a `system`, only if it is the model the token was
    recorded on (a catalogue replay passes None, rebuilds the system from the schedule's
    protocol, variant and parameters, then calls `check_fits`)."""
    sched = Schedule.decode(token)
    if system is not None:
        sched.check_fits(system)
    return sched


def plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A System's parameters as the token holds them: JSON values (a value JSON cannot
    hold is named by its type, so that a user protocol's parameters still compare)."""
    return dict(json.loads(json.dumps(dict(params), default=lambda o: f"<{type(o).__name__}>")))


# -- decoding ------------------------------------------------------------------------------

def _document(token: str) -> dict[str, Any]:
    if not isinstance(token, str):
        raise ScheduleError(f"a schedule token is text, not {type(token).__name__}")
    if re.fullmatch(r"cm\d+-.*", token, re.DOTALL) and not token.startswith(PREFIX):
        old = token.split("-", 1)[0]
        raise ScheduleError(f"schedule token format {old} is old (this crossmod reads "
                            f"cm{VERSION}); re-run `crossmod check` to record a new one")
    if not token.startswith(PREFIX):
        raise ScheduleError(f"not a crossmod schedule token: {token[:20]!r}")
    body = token[len(PREFIX):]
    try:  # ValueError: non-ASCII text, bad UTF-8 or JSON, an integer of over 4,300 digits
        packed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_",
                                  validate=True)
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, MAX_JSON)
    except (binascii.Error, zlib.error, ValueError) as e:
        raise ScheduleError(f"corrupt schedule token ({e.__class__.__name__})") from None
    if inflate.unconsumed_tail or not inflate.eof:
        raise ScheduleError("corrupt schedule token (truncated, or not a schedule's size)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ScheduleError(f"corrupt schedule token ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise ScheduleError("corrupt schedule token (not a schedule's fields)")
    return doc


def _from_doc(doc: dict[str, Any]) -> Schedule:
    if not _FIELDS <= set(doc) <= _FIELDS | _OPTIONAL:
        missing, extra = sorted(_FIELDS - set(doc)), sorted(set(doc) - _FIELDS - _OPTIONAL)
        what = "; ".join(x for x in (missing and f"missing {', '.join(missing)}",
                                     extra and f"unknown {', '.join(map(repr, extra))}") if x)
        raise ScheduleError(f"corrupt schedule token (fields: {what[:80]})")
    if type(doc["v"]) is not int or doc["v"] != VERSION:
        raise ScheduleError(f"corrupt schedule token (format {_short(doc['v'])} in a "
                            f"{PREFIX} token)")
    p, var, params, fp, c = doc["p"], doc["var"], doc["params"], doc["fp"], doc["c"]
    if not (isinstance(p, str) and p and isinstance(var, str) and var):
        raise ScheduleError("corrupt schedule token (protocol and variant are names)")
    if not isinstance(params, dict):
        raise ScheduleError("corrupt schedule token (parameters are not name: value)")
    if not (isinstance(fp, dict) and set(fp) == set(PARTS)
            and all(isinstance(v, str) and _HEX.fullmatch(v) for v in fp.values())):
        raise ScheduleError("corrupt schedule token (not a model fingerprint)")
    if not (isinstance(c, list) and len(c) <= MAX_CHOICES
            and all(type(x) is int and 0 <= x < MAX_CHOICE for x in c)):
        raise ScheduleError("corrupt schedule token (choices are not small non-negative "
                            "integers)")
    cyc = doc.get("cyc")
    if cyc is not None and not (type(cyc) is int and 0 <= cyc < len(c)):
        raise ScheduleError("corrupt schedule token (the cycle starts outside it)")
    return Schedule(p, var, params, Fingerprint(**fp), tuple(c), cyc)


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _param_diff(token: dict[str, Any], now: dict[str, Any]) -> str:
    diffs = []
    for k in [*token, *(k for k in now if k not in token)]:
        if k not in now:
            diffs.append(f"{_key(k)}={_short(token[k])} (not a parameter now)")
        elif k not in token:
            diffs.append(f"{_key(k)} (none in the token; {_short(now[k])} now)")
        elif _canonical(token[k]) != _canonical(now[k]):
            diffs.append(f"{_key(k)}={_short(token[k])} in the token, {_short(now[k])} now")
    more = f" and {len(diffs) - 3} more" if len(diffs) > 3 else ""
    return "; ".join(diffs[:3]) + more


def _key(k: str) -> str:
    return k if k.isidentifier() and len(k) <= 24 else _short(k)


def _short(v: object) -> str:
    text = json.dumps(v)  # one line whatever the value holds (newlines escaped)
    return text if len(text) <= 24 else text[:21] + "..."


def _fp_diff(then: Fingerprint, now: Fingerprint, parts: list[str]) -> str:
    return ", ".join(f"{p} {getattr(then, p)[:8]} -> {getattr(now, p)[:8]}" for p in parts)
