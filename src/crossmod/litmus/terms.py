"""The token level of herd7's litmus syntax: values, locations, the initial state, the
condition.

Owns: `tokens()`, and the readers of the initial state (`{ 0:X0=NOP; [x]=P1:L0; ins_t
*1:X30; ... }`) and of the condition (`locations [...]`, `exists` / `~exists` / `forall` /
`final` with `\\/ /\\ ~ =>` and register, memory, `label:"..."`, `instr:"..."` and
`fault(...)` terms). Imports: litmus.syntax, litmus.isa.

A reader works for a parser (litmus/parse.py) that knows the file and the code: `err(line,
col, message)`, `label(proc, name, token)` (a label's address, counted as named) and
`nthreads`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from crossmod.litmus.isa import InsnError, parse_insn
from crossmod.litmus.syntax import Code, Fault, Insn, LitmusError, Loc, Opaque, Prop, Sym

_REGNAME = re.compile(r"^[XW]\d+$", re.I)
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"[^"\n]*")
  | (?P<op>/\\|\\/|=>|<=>|~|==|!=|[{}\[\]():;=*&,|])
  | (?P<num>-?0x[0-9a-fA-F]+|-?\d+(?![\w.]))
  | (?P<name>[A-Za-z_][\w.]*)
""", re.X)
QUANTIFIERS = ("exists", "forall", "final")


@dataclass(frozen=True)
class Tok:
    """A token and where it starts (1-based line and column in the file)."""

    kind: str
    text: str
    line: int
    col: int


class Host(Protocol):
    """What a reader asks of the parser it works for."""

    lines: list[str]
    nthreads: int

    def err(self, line: int, col: int, msg: str) -> LitmusError: ...
    def label(self, proc: int, name: str, tok: Tok) -> Code: ...


def tokens(text: str, file: str, line0: int = 1, col0: int = 1) -> list[Tok]:
    out, i, line, col = [], 0, line0, col0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            raise LitmusError(file, line, col, f"unexpected character {text[i]!r}")
        kind, s = m.lastgroup, m.group()
        assert kind is not None  # every alternative of _TOKEN is a named group
        if kind != "ws":
            out.append(Tok(kind, s, line, col))
        nl = s.count("\n")
        if nl:
            line += nl
            col = len(s) - s.rfind("\n")
        else:
            col += len(s)
        i = m.end()
    return out


def parse_int(text: str) -> int:
    """A decimal or 0x-hexadecimal integer (a leading 0 is not octal)."""
    neg = text.startswith("-")
    digits = text[1:] if neg else text
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
    return -value if neg else value


class Reader:
    """A cursor over tokens, for the initial state and the condition."""

    def __init__(self, p: Host, toks: list[Tok]) -> None:
        self.p, self.toks, self.i = p, toks, 0

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str) -> Tok:
        tok = self.peek()
        if tok is None:
            raise self._the_end(what)
        self.i += 1
        return tok

    def _the_end(self, what: str) -> LitmusError:
        """The error of a reader that wanted `what` and found no more tokens."""
        last = self.toks[-1] if self.toks else Tok("", "", len(self.p.lines), 1)
        return self.p.err(last.line, last.col + len(last.text), f"expected {what}, "
                                                                "found the end")

    def peek_kind(self, k: int) -> str | None:
        tok = self.peek(k)
        return None if tok is None else tok.kind

    def peek_text(self, k: int) -> str | None:
        tok = self.peek(k)
        return None if tok is None else tok.text

    def expect(self, text: str) -> Tok:
        tok = self.next(repr(text))
        if tok.text != text:
            raise self.p.err(tok.line, tok.col, f"expected {text!r}, not {tok.text!r}")
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.text == text

    def value(self) -> Any:
        """A value: 12, -1, 0x10, x, &x, NOP, P1:L0, 1:L0, label:"P1:L0", instr:"B .+12"."""
        tok = self.next("a value")
        if tok.text == "(":
            return self._pteval(tok)
        if tok.text == "&":
            return Sym(self.next("a location").text)
        if tok.kind == "num":
            if self.at(":") and self.peek_kind(1) == "name":
                self.next(":")
                return self.p.label(int(tok.text), self.next("a label").text, tok)
            return parse_int(tok.text)
        if tok.kind != "name":
            raise self.p.err(tok.line, tok.col, f"expected a value, not {tok.text!r}")
        if tok.text in ("label", "instr") and self.at(":"):
            self.next(":")
            s = self.next("a quoted string")
            if s.kind != "str":
                raise self.p.err(s.line, s.col, f"expected a quoted string after {tok.text}:")
            return self._quoted(tok.text, s)
        m = re.match(r"^P(\d+)$", tok.text)
        if m and self.at(":"):
            self.next(":")
            return self.p.label(int(m.group(1)), self.next("a label").text, tok)
        if tok.text.upper() == "NOP":
            return Insn("NOP", (), "NOP")
        return Sym(tok.text)

    def _pteval(self, start: Tok) -> Opaque:
        """A page-table entry, `(oa:phy_x, ...)`: kept as an opaque value. MODEL: herd7's
        ifetch variant does not combine with its VMSA one (aarch64util.cat flags it), so
        a `pte_x` is a location like any other and no address is remapped."""
        parts = []
        while not self.at(")"):
            parts.append(self.next("')'").text)
        self.next(")")
        return Opaque("(" + "".join(parts) + ")")

    def _quoted(self, kind: str, s: Tok) -> Any:
        body = s.text[1:-1]
        if kind == "instr":
            try:
                return parse_insn(body, None)
            except InsnError as e:
                raise self.p.err(s.line, s.col, f"instr:{s.text}: {e}") from None
        m = re.match(r"^P(\d+):([A-Za-z_]\w*)$", body)
        if not m:
            raise self.p.err(s.line, s.col, f"label:{s.text}: expected \"P<n>:<label>\"")
        return self.p.label(int(m.group(1)), m.group(2), s)

    def location(self) -> Loc:
        """0:X1, P1:L0 (the instruction there), x, [x]."""
        tok = self.next("a location")
        if tok.text == "[":
            inner = self.location()
            self.expect("]")
            return inner
        if tok.kind == "num" and self.at(":"):
            self.next(":")
            return self._reg_or_label(int(tok.text), tok)
        m = re.match(r"^P(\d+)$", tok.text)
        if m and self.at(":"):
            self.next(":")
            return self._reg_or_label(int(m.group(1)), tok)
        if tok.kind != "name":
            raise self.p.err(tok.line, tok.col, f"expected a location, not {tok.text!r}")
        return Loc(addr=Sym(tok.text))

    def _reg_or_label(self, proc: int, at: Tok) -> Loc:
        name = self.next("a register or a label")
        if _REGNAME.match(name.text):
            if proc >= self.p.nthreads:
                raise self.p.err(at.line, at.col, f"no thread P{proc} for {proc}:{name.text}")
            return Loc(proc, "X" + name.text[1:])
        if name.kind != "name":
            raise self.p.err(name.line, name.col, f"expected a register, not {name.text!r}")
        return Loc(addr=self.p.label(proc, name.text, at))


class InitReader(Reader):
    """`{ loc=value; type loc; type *loc=value; ... }`."""

    def read(self) -> dict[Loc, Any]:
        init: dict[Loc, Any] = {}
        while (start := self.peek()) is not None:
            if self.at(";"):
                self.next(";")
                continue
            loc, value = self._entry()
            if loc in init:
                raise self.p.err(start.line, start.col, f"{loc} initialised twice")
            init[loc] = value
            if self.peek() is not None:
                self.expect(";")
        return init

    def _entry(self) -> tuple[Loc, Any]:
        first = self.peek()
        assert first is not None  # read() calls this with a token ahead
        typed = (first.kind == "name" and not re.match(r"^P\d+$", first.text)
                 and self.peek_text(1) not in (None, "=", ":", ";"))
        if typed:
            self.next("a type")
        if self.at("*"):
            self.next("*")
        loc = self.location()
        if not self.at("="):
            return loc, 0
        self.next("=")
        return loc, self.value()


class CondReader(Reader):
    """`locations [...]`, an optional `filter`, then the quantified proposition."""

    def read(self) -> tuple[list[Any], str, Prop]:
        locations: list[Any] = []
        if self.at("locations"):
            self.next("locations")
            self.expect("[")
            while not self.at("]"):
                locations.append(self._loc_item())
                if self.at(";"):
                    self.next(";")
                elif not self.at("]"):
                    tok = self.next("';' or ']'")
                    raise self.p.err(tok.line, tok.col, f"expected ';' or ']', not "
                                                        f"{tok.text!r}")
            self.expect("]")
            if self.at(";"):
                self.next(";")
        if self.at("filter"):
            tok = self.next("filter")
            raise self.p.err(tok.line, tok.col, "filter is not supported")
        quant, prop = self._constraint()
        if self.at(";"):
            self.next(";")
        rest = self.peek()
        if rest is not None:
            raise self.p.err(rest.line, rest.col,
                             f"unexpected {rest.text!r} after the condition")
        return locations, quant, prop

    def _loc_item(self) -> Any:
        if self.at("fault"):
            return self._fault()
        return self.location()

    def _constraint(self) -> tuple[str, Prop]:
        tok = self.peek()
        if tok is None:
            return "forall", ("true",)
        if tok.text == "~" and self.peek_text(1) == "exists":
            self.i += 2
            return "~exists", self.prop()
        if tok.text in QUANTIFIERS:
            self.next(tok.text)
            return {"final": "exists"}.get(tok.text, tok.text), self.prop()
        if tok.text == "(":
            return "exists", self.prop()
        raise self.p.err(tok.line, tok.col, f"expected exists, ~exists, forall or final, "
                                            f"not {tok.text!r}")

    def prop(self) -> Prop:
        left = self._conj()
        while self.at("\\/"):
            self.next("\\/")
            right = self._conj()
            left = ("or", [*left[1], right]) if left[0] == "or" else ("or", [left, right])
        if self.at("=>"):
            self.next("=>")
            return ("implies", left, self.prop())
        return left

    def _conj(self) -> Prop:
        left = self._unary()
        while self.at("/\\"):
            self.next("/\\")
            right = self._unary()
            left = ("and", [*left[1], right]) if left[0] == "and" else ("and", [left, right])
        return left

    def _unary(self) -> Prop:
        tok = self.peek()
        if tok is None:
            raise self._the_end("a condition")
        if tok.text in ("~", "not"):
            self.next(tok.text)
            return ("not", self._unary())
        if tok.text == "(":
            self.next("(")
            p = self.prop() if not self.at(")") else ("true",)
            self.expect(")")
            return p
        if tok.text in ("true", "false"):
            self.next(tok.text)
            return (tok.text,)
        if tok.text == "fault":
            return ("fault", self._fault())
        loc = self.location()
        if not (self.at("=") or self.at("==")):
            return ("atom", loc, 0)
        self.next("=")
        return ("atom", loc, self.value())

    def _fault(self) -> Fault:
        self.expect("fault")
        self.expect("(")
        where = self.location()
        if where.reg is not None:
            raise self.p.err(self.toks[self.i - 1].line, self.toks[self.i - 1].col,
                             "fault(...) names a label P<n>:<label>, not a register")
        loc = kind = None
        while self.at(","):
            self.next(",")
            tok = self.next("a location or a fault type")
            parts = [tok.text]
            while self.at(":"):
                self.next(":")
                parts.append(self.next("a fault type").text)
            name = ":".join(parts)
            if name[0].isupper() or ":" in name:
                kind = name
            else:
                loc = Sym(name)
        self.expect(")")
        return Fault(where.addr, loc, kind)
