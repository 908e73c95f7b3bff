"""Reading herd7's AArch64 litmus syntax, as the ifetch catalogue writes it.

Owns: `parse(text, file)` / `parse_file(path)` -> `Litmus`: the test's structure (header,
info lines, the initial-state block, the thread columns, the condition's place).
Imports: litmus.syntax, litmus.isa, litmus.terms.

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
`LitmusError` naming the file, the line and the column. The token level -- values,
locations, the initial state's entries, the condition -- is litmus/terms.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from crossmod.litmus.isa import InsnError, parse_insn
from crossmod.litmus.syntax import (
    Code,
    Line,
    Litmus,
    LitmusError,
    Thread,
)
from crossmod.litmus.terms import CondReader, InitReader, Tok, tokens


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
        t.init = InitReader(self, init_toks).read()
        # herd7 fetches, as events, the instructions at the labels the initial state names
        t.exported = frozenset(self.named)
        cond = CondReader(self, cond_toks)
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
