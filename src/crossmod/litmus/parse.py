"""Reading herd7's AArch64 litmus syntax, as the ifetch catalogue writes it.

Owns: `parse(text, file)` / `parse_file(path)` -> `Litmus`. Imports: litmus.syntax,
litmus.isa.

    AArch64 NAME
    "optional description"                    key=value lines: CacheType=, Variant=, ...
    { 0:X0=NOP; 0:X1=P1:L0; [x]=P1:L0; ins_t *1:X9; 1:X2=label:"P1:m0"; x=1; }
     P0          | P1       | P1.F       ;    a thread column per P<n>, handlers P<n>.F
     STR W0,[X1] | L0:      | ADR X9,l1  ;    cells: labels (`name:`) then an instruction
                 |  B l1    | ERET       ;
    locations [0:X9; x;]                      then the condition: exists / ~exists /
    exists (1:X9=0 /\\ x=1)                    forall / final, with \\/ /\\ ~ => and
                                              fault(P0:L0,UndefinedInstruction) terms

Comments are OCaml's `(* ... *)`, nested, anywhere. Anything the parser cannot read is a
`LitmusError` naming the file, the line and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossmod.litmus.isa import InsnError, parse_insn
from crossmod.litmus.syntax import (
    Code,
    Fault,
    Insn,
    Line,
    Litmus,
    LitmusError,
    Loc,
    Opaque,
    Prop,
    Sym,
    Thread,
)

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
    kind: str
    text: str
    line: int
    col: int


def parse_file(path: str | Path) -> Litmus:
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LitmusError(str(path), 0, 0, f"cannot read: {e}") from None
    return parse(text, str(path))


def parse(text: str, file: str = "<litmus>") -> Litmus:
    """Parse one test (see the module docstring)."""
    return _Parser(text, file).litmus()


def strip_comments(text: str, file: str) -> str:
    """Blank out `(* ... *)` comments (nested), keeping every line and column in place."""
    out, depth, i, start = list(text), 0, 0, (0, 0)
    while i < len(text):
        two = text[i:i + 2]
        if two == "(*":
            if depth == 0:
                start = _pos(text, i)
            depth += 1
            out[i] = out[i + 1] = " "
            i += 2
            continue
        if two == "*)" and depth:
            depth -= 1
            out[i] = out[i + 1] = " "
            i += 2
            continue
        if depth and text[i] != "\n":
            out[i] = " "
        i += 1
    if depth:
        raise LitmusError(file, *start, "unterminated comment (* ...")
    return "".join(out)


def _pos(text: str, i: int) -> tuple[int, int]:
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def tokens(text: str, file: str, line0: int = 1, col0: int = 1) -> list[Tok]:
    out, i, line, col = [], 0, line0, col0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            raise LitmusError(file, line, col, f"unexpected character {text[i]!r}")
        kind, s = m.lastgroup, m.group()
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


class _Parser:
    """One test's text, split into header, initial state, code and condition."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.text = strip_comments(text, file)
        self.lines = self.text.split("\n")
        self.labels: dict[int, dict[str, Code]] = {}
        self.named: list[Code] = []  # every label a value names, in order

    def err(self, line: int, col: int, msg: str) -> LitmusError:
        return LitmusError(self.file, line, col, msg)

    def litmus(self) -> Litmus:
        n, name = self._header()
        info, n = self._info(n)
        init_toks, n = self._init_block(n)
        threads, n = self._code(n)
        self.nthreads = len(threads)
        cond_toks = tokens("\n".join(self.lines[n:]), self.file, n + 1)
        t = Litmus(self.file, name, info, {}, threads, "forall", ("true",),
                   labels=self.labels, info_lines=self.info_lines)
        t.init = _InitReader(self, init_toks).read()
        # herd7 fetches, as events, the instructions at the labels the initial state names
        t.exported = frozenset(self.named)
        cond = _CondReader(self, cond_toks)
        t.locations, t.quantifier, t.prop = cond.read()
        t.condition_text = " ".join(" ".join(self.lines[n:]).split())
        return t

    def label(self, proc: int, name: str, tok: Tok) -> Code:
        try:
            code = self.labels[proc][name]
        except KeyError:
            raise self.err(tok.line, tok.col, f"no label {name} in P{proc}") from None
        self.named.append(code)
        return code

    # ---- header, info, init --------------------------------------------------------
    def _header(self) -> tuple[int, str]:
        for n, line in enumerate(self.lines):
            if line.strip():
                parts = line.split()
                if parts[0] != "AArch64":
                    raise self.err(n + 1, 1, f"not an AArch64 litmus test (architecture "
                                             f"{parts[0]!r})")
                if len(parts) < 2:
                    raise self.err(n + 1, len(line) + 1, "missing test name after AArch64")
                return n + 1, parts[1]
        raise self.err(1, 1, "empty file")

    def _info(self, n: int) -> tuple[dict[str, str], int]:
        info: dict[str, str] = {}
        self.info_lines: dict[str, int] = {}
        while n < len(self.lines):
            s = self.lines[n].strip()
            if s.startswith("{"):
                return info, n
            if s and not s.startswith('"'):
                key, eq, value = s.partition("=")
                if not eq or not re.match(r"^[A-Za-z][\w-]*$", key.strip()):
                    raise self.err(n + 1, 1, f"expected key=value or '{{', not {s[:40]!r}")
                info[key.strip()] = value.strip()
                self.info_lines[key.strip()] = n + 1
            n += 1
        raise self.err(n, 1, "no initial state '{ ... }'")

    def _init_block(self, n: int) -> tuple[list[Tok], int]:
        """The tokens between '{' and its '}' (found first: the code after it is not made
        of these tokens), and the line after the '}'."""
        depth = 0
        for ln in range(n, len(self.lines)):
            for col, ch in enumerate(self.lines[ln]):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if depth == 0 and ch == "}":
                    if self.lines[ln][col + 1:].strip():
                        raise self.err(ln + 1, col + 2, "expected the thread header on the "
                                                        "line after '}'")
                    body = "\n".join([*self.lines[n:ln], self.lines[ln][:col]])
                    toks = tokens(body, self.file, n + 1)
                    return toks[1:], ln + 1
        raise self.err(n + 1, 1, "initial state '{' is never closed")

    # ---- code ---------------------------------------------------------------------
    def _code(self, n: int) -> tuple[list[Thread], int]:
        while n < len(self.lines) and not self.lines[n].strip():
            n += 1
        if n >= len(self.lines):
            raise self.err(n, 1, "no thread columns after the initial state")
        self.header_line = n + 1
        head = self._row(n)
        if not head:
            raise self.err(n + 1, 1, "expected the thread header (P0 | P1 ... ;)")
        cols = [self._column_name(c) for c in head[0]]
        if len(set(cols)) != len(cols):
            raise self.err(n + 1, 1, "a thread column appears twice")
        rows, n = [], n + 1
        while n < len(self.lines) and not _is_condition(self.lines[n]):
            if self.lines[n].strip():
                rows.extend(self._row(n))
            n += 1
        return self._threads(cols, rows), n

    def _row(self, n: int) -> list[list[tuple[str, int, int]]]:
        """The ';'-terminated rows on line n, each a list of (cell text, line, column)."""
        out, line, col = [], self.lines[n], 0
        for part in line.split(";"):
            cells, c = [], col
            for cell in part.split("|"):
                cells.append((cell, n + 1, c + 1))
                c += len(cell) + 1
            col += len(part) + 1
            if part.strip() or len(cells) > 1:
                out.append(cells)
        return out

    def _column_name(self, cell: tuple[str, int, int]) -> tuple[int, bool]:
        m = re.match(r"^\s*P(\d+)(\.F)?\s*$", cell[0])
        if not m:
            raise self.err(cell[1], cell[2], f"expected a thread name P<n> or P<n>.F, not "
                                             f"{cell[0].strip()!r}")
        return int(m.group(1)), bool(m.group(2))

    def _threads(self, cols: list[tuple[int, bool]], rows: list) -> list[Thread]:
        cells: dict[tuple[int, bool], list] = {c: [] for c in cols}
        for row in rows:
            if len(row) != len(cols):
                raise self.err(row[0][1], row[0][2], f"{len(row)} columns where the header "
                                                     f"has {len(cols)}")
            for c, cell in zip(cols, row, strict=True):
                cells[c].append(_cell_labels(cell))
        for (proc, handler), items in cells.items():
            index = 0
            for labs, body, line, col in items:
                for lab in labs:
                    if lab in self.labels.setdefault(proc, {}):
                        raise self.err(line, col, f"label {lab} defined twice in P{proc}")
                    self.labels[proc][lab] = Code(proc, handler, index, f"P{proc}:{lab}")
                index += bool(body.strip())
        threads: dict[int, Thread] = {}
        for (proc, handler), items in cells.items():
            code = [self._line(proc, x) for x in items]
            code = [c for c in code if c.insn is not None or c.labels]
            th = threads.setdefault(proc, Thread(proc, []))
            if handler:
                th.handler = code
            else:
                th.code = code
        for proc, handler in cols:
            if handler and (proc, False) not in cols:
                raise self.err(self.header_line, 1, f"fault handler P{proc}.F for a "
                                                    f"thread P{proc} that does not exist")
        procs = sorted(threads)
        if procs != list(range(len(procs))):
            raise self.err(self.header_line, 1, f"threads must be P0..P{len(procs) - 1}, "
                                                f"not {', '.join(f'P{p}' for p in procs)}")
        return [threads[p] for p in procs]

    def _line(self, proc: int, item: tuple) -> Line:
        labs, body, line, col = item
        if not body.strip():
            return Line(tuple(labs), None, line, col)
        labels = self.labels.get(proc, {})

        def resolve(name: str) -> Code:
            if name not in labels:
                raise InsnError(f"no label {name} in P{proc}")
            return labels[name]

        try:
            return Line(tuple(labs), parse_insn(body, resolve), line, col)
        except InsnError as e:
            raise self.err(line, col + len(body) - len(body.lstrip()), str(e)) from None


def _int(text: str) -> int:
    """A decimal or 0x-hexadecimal integer (a leading 0 is not octal)."""
    neg = text.startswith("-")
    digits = text[1:] if neg else text
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
    return -value if neg else value


def _is_condition(line: str) -> bool:
    s = line.strip()
    return bool(re.match(r"^(~\s*exists|exists|forall|final|locations|filter|observed)\b", s)
                or s.startswith("("))


def _cell_labels(cell: tuple[str, int, int]) -> tuple[list[str], str, int, int]:
    text, line, col = cell
    labs = []
    while True:
        m = re.match(r"^\s*([A-Za-z_]\w*)\s*:", text)
        if not m:
            break
        labs.append(m.group(1))
        col += m.end()
        text = text[m.end():]
    return labs, text, line, col


class _Reader:
    """A cursor over tokens, for the initial state and the condition."""

    def __init__(self, p: _Parser, toks: list[Tok]) -> None:
        self.p, self.toks, self.i = p, toks, 0

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str) -> Tok:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else Tok("", "", len(self.p.lines), 1)
            raise self.p.err(last.line, last.col + len(last.text), f"expected {what}, "
                                                                   "found the end")
        self.i += 1
        return tok

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
            if self.at(":") and self.peek(1) is not None and self.peek(1).kind == "name":
                self.next(":")
                return self.p.label(int(tok.text), self.next("a label").text, tok)
            return _int(tok.text)
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


class _InitReader(_Reader):
    """`{ loc=value; type loc; type *loc=value; ... }`."""

    def read(self) -> dict[Loc, Any]:
        init: dict[Loc, Any] = {}
        while self.peek() is not None:
            if self.at(";"):
                self.next(";")
                continue
            start = self.peek()
            loc, value = self._entry()
            if loc in init:
                raise self.p.err(start.line, start.col, f"{loc} initialised twice")
            init[loc] = value
            if self.peek() is not None:
                self.expect(";")
        return init

    def _entry(self) -> tuple[Loc, Any]:
        first = self.peek()
        typed = (first.kind == "name" and not re.match(r"^P\d+$", first.text)
                 and self.peek(1) is not None and self.peek(1).text not in ("=", ":", ";"))
        if typed:
            self.next("a type")
        if self.at("*"):
            self.next("*")
        loc = self.location()
        if not self.at("="):
            return loc, 0
        self.next("=")
        return loc, self.value()


class _CondReader(_Reader):
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
        tok = self.peek()
        if tok is not None:
            raise self.p.err(tok.line, tok.col, f"unexpected {tok.text!r} after the condition")
        return locations, quant, prop

    def _loc_item(self) -> Any:
        if self.at("fault"):
            return self._fault()
        return self.location()

    def _constraint(self) -> tuple[str, Prop]:
        tok = self.peek()
        if tok is None:
            return "forall", ("true",)
        if tok.text == "~" and self.peek(1) is not None and self.peek(1).text == "exists":
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
            self.next("a condition")
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
