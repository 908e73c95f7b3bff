"""Parameter schemas: what a catalogue entry is built with, typed, with defaults, meanings and
the values it can honour.

Owns: `param()` (one field of a schema: a frozen dataclass per entry), `ParamSpec` (a field
read back: name, type, default, meaning, valid values), `MachineParams` (the fields every
entry has: CPUs, NMIs, fetch and memory model), `resolve()` (given values checked against a
schema, defaults filled in), `CatalogueError`, and `Task` (what a builder gives a CPU).
Imports: machine.state, machine.text.

A value arrives from Python (`build(..., cpus=3)`), from the command line (`--cpus 3`,
`--set execs=1`, read by `ParamSpec.parse`) or from a replay token (JSON): all three are
checked here, by type and range, before any builder runs -- a builder only ever sees a
schema instance whose every field holds a value it can honour.
"""

from __future__ import annotations

import dataclasses
import shlex
import typing
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from crossmod.machine.state import MEMORY_MODELS
from crossmod.machine.text import FETCH_MODELS

Value = int | bool | str
# What a builder gives a CPU to run: a routine and its arguments, or None (idle).
Task = tuple[Callable[..., Generator[Any, Any, Any]], tuple[Any, ...]] | None
TYPES: dict[type, str] = {int: "int", bool: "bool", str: "str"}
# Parameters with an option of their own on the command line; the others go by --set.
OPTIONS = ("cpus", "nmis", "fetch", "memory", "sites", "users")


class CatalogueError(ValueError):
    """A protocol name, variant or parameter the catalogue cannot honour (CLI exit 2)."""


def param(default: Value, meaning: str, *, range: tuple[int, int] | None = None,
          choices: tuple[str, ...] | None = None, universe: tuple[str, ...] | None = None,
          noun: str = "") -> Any:
    """One schema field: its default, what it means, and what it may hold -- an int in
    `range` (inclusive), a str among `choices` (`universe`, the whole kind -- every fetch
    model -- makes the message tell "not for this protocol" from "no such model"), or a
    bool."""
    return dataclasses.field(default=default, metadata={
        "help": meaning, "range": range, "choices": choices, "universe": universe,
        "noun": noun})


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of one entry, as `crossmod list` shows it and `resolve` checks it."""

    name: str
    type: type
    default: Value
    help: str
    range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None
    universe: tuple[str, ...] | None = None
    noun: str = ""

    def valid(self) -> str:
        """The values it may hold, as a user types them: "2..8", "tso, pso", "true, false"."""
        if self.type is bool:
            return "true, false"
        if self.range is not None:
            return f"{self.range[0]}..{self.range[1]}"
        return ", ".join(self.choices or ())

    def flag(self) -> str:
        """How the command line names it: `--cpus`, or `--set execs` for the others."""
        return f"--{self.name}" if self.name in OPTIONS else f"--set {self.name}"

    def spell(self, value: object) -> str:
        """`--cpus 3`, `--set nmi_on='all'`: the parameter and a value, for messages."""
        shown = brief(value) if isinstance(value, str) else str(value)
        return f"--{self.name} {shown}" if self.name in OPTIONS else f"--set {self.name}={shown}"

    def args(self, value: Value) -> list[str]:
        """The command-line arguments that set it to `value`."""
        text = show(value)
        if self.name in OPTIONS:
            return [f"--{self.name}", text]
        return ["--set", f"{self.name}={text}"]

    def check(self, protocol: str, value: object) -> None:
        """Refuse a value of the wrong type or outside what `protocol` can honour."""
        if type(value) is not self.type:  # exact: True is not an int, 2.0 is not an int
            raise CatalogueError(f"parameter {self.name}={brief(value)} of {protocol} is not "
                                 f"a{'n' * (self.type is int)} {TYPES[self.type]} "
                                 f"(valid: {self.valid()})")
        if self.range is not None and not self.range[0] <= value <= self.range[1]:  # type: ignore[operator]
            raise CatalogueError(f"{self.spell(value)} is outside what {protocol} can honour "
                                 f"({self.valid()})")
        if self.choices is not None and value not in self.choices:
            if self.universe is not None and value not in self.universe:
                raise CatalogueError(f"unknown {self.noun} {brief(value)}; valid: "
                                     f"{', '.join(self.universe)}")
            every = f" (all models: {', '.join(self.universe)})" if self.universe else ""
            raise CatalogueError(f"{self.spell(value)} does not apply to {protocol}; valid: "
                                 f"{self.valid()}{every}")

    def parse(self, protocol: str, text: str) -> Value:
        """A value typed on the command line (`--set name=value`), read by the type."""
        if self.type is bool:
            low = text.lower()
            if low not in ("true", "false"):
                raise CatalogueError(f"--set {self.name}={text}: {protocol} takes true or "
                                     "false")
            return low == "true"
        if self.type is int:
            digits = text[1:] if text[:1] in "+-" else text
            if not (digits.isascii() and digits.isdigit()):
                raise CatalogueError(f"--set {self.name}={text}: not an integer (valid for "
                                     f"{protocol}: {self.valid()})")
            return int(text)
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": TYPES[self.type],
                               "default": self.default, "help": self.help}
        if self.range is not None:
            out["range"] = list(self.range)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


def brief(value: object) -> str:
    """`repr(value)`, cut to fit a one-line message (a token may hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def show(value: Value) -> str:
    """A value as typed on a command line (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return shlex.quote(str(value))


def specs(schema: type) -> tuple[ParamSpec, ...]:
    """The parameters a schema declares, in declaration order."""
    hints = typing.get_type_hints(schema)
    out = []
    for f in dataclasses.fields(schema):
        t = hints[f.name]
        if t not in TYPES:
            raise AssertionError(f"{schema.__name__}.{f.name}: a parameter is an int, a "
                                 f"bool or a str, not {t}")
        m = f.metadata
        out.append(ParamSpec(f.name, t, f.default, m.get("help", ""), m.get("range"),  # type: ignore[arg-type]
                             m.get("choices"), m.get("universe"), m.get("noun", "")))
    return tuple(out)


def resolve(protocol: str, schema: type, defaults: Mapping[str, Value],
            given: Mapping[str, object]) -> Any:
    """The schema instance for `given` values over the variant's `defaults` (which win over
    the schema's own); CatalogueError names the first parameter it cannot honour, or the
    combination the schema's `conflict()` -- where it has one -- names."""
    by_name = {s.name: s for s in specs(schema)}
    for k in given:
        if k not in by_name:
            what = f"--{k}" if k in OPTIONS else f"parameter {brief(k)}"
            raise CatalogueError(f"{what} does not apply to {protocol} (its parameters: "
                                 f"{', '.join(by_name)})")
    values = {**defaults, **given}
    for k, v in values.items():
        by_name[k].check(protocol, v)
    p = schema(**values)
    conflict = getattr(p, "conflict", None)
    if conflict is not None and (why := conflict()):
        raise CatalogueError(why)
    return p


@dataclass(frozen=True)
class MachineParams:
    """What every entry is built with: the machine's size and models. An entry's schema
    extends it with its own fields (or redeclares one for another default or range), and
    may define `conflict(self) -> str | None` for values it cannot honour together."""

    cpus: int = param(2, "number of CPUs (CPU 0 patches)", range=(2, 8))
    nmis: int = param(0, "NMI budget per run", range=(0, 3))
    fetch: str = param("per-byte", "instruction-fetch model", choices=("per-byte", "snapshot"),
                       universe=FETCH_MODELS, noun="fetch model")
    memory: str = param("tso", "data-memory model", choices=MEMORY_MODELS,
                        universe=MEMORY_MODELS, noun="memory model")


def fetch_param(*choices: str) -> Any:
    """The `fetch` field of an entry that honours only `choices` (the first the default)."""
    return param(choices[0], "instruction-fetch model", choices=choices, universe=FETCH_MODELS,
                 noun="fetch model")


def memory_param(*choices: str) -> Any:
    """The `memory` field of an entry that honours only `choices` (the first the default)."""
    return param(choices[0], "data-memory model", choices=choices, universe=MEMORY_MODELS,
                 noun="memory model")
