"""The routine table: generators as small integers (DESIGN.md, "memoise").

Owns: turning a routine instance `(fn, args)` and the values sent into it into interned node
ids, so that machine states are tuples of small ints and a suspended generator never has to
be copied. Imports: stdlib and machine.ops.

A node is one suspension point of one routine instance: the op it yielded (or the value it
returned) plus an identity. Edges `(node, input) -> node` are tabulated lazily; on a miss the
generator is rebuilt by replaying the node's recorded inputs from the start (stateless
replay, as loom and CHESS do), or taken from a one-deep cache of live generators.

Node identity comes in two flavours (`identity=`):
  "locals"   (code, resume offset, locals) of each frame in the `yield from` chain. Sound when
             a routine's future is determined by where it stopped and its locals -- the rule
             protocol authors follow: CPU-private data in locals, no state hidden in iterators
             over repeated items, no reads of Python globals that change.
  "history"  the whole list of inputs. Always sound, merges fewer states; the test suite
             checks the catalogue gives the same verdicts under both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crossmod.machine.ops import Op

Routine = Callable[..., Generator[Op, Any, Any]]

if TYPE_CHECKING:
    from types import GeneratorType

    # A live routine instance: a real generator object, whose frames (gi_frame,
    # gi_yieldfrom) give a node its identity.
    _Gen = GeneratorType[Any, Any, Any]


class ModelError(Exception):
    """A protocol broke a rule of the model (unhashable local, bad yield value...)."""


@dataclass(slots=True)
class Node:
    root: tuple[Routine, tuple[Any, ...]]
    history: tuple[Any, ...]
    op: Op | None  # None when the routine has returned
    ret: Any = None
    line: int = 0  # source line of the yield, for trails
    func: str = ""  # innermost function of the `yield from` chain, for trails
    codes: frozenset[Any] = frozenset()  # code of every function of that chain (NMI regions)

    @property
    def finished(self) -> bool:
        return self.op is None


def routine_name(fn: Routine) -> str:
    return getattr(fn, "__name__", repr(fn))


class RoutineTable:
    """Interned routine suspension points and their transitions."""

    def __init__(self, identity: str = "locals",
                 check: Callable[[Node], None] | None = None) -> None:
        if identity not in ("locals", "history"):
            raise ValueError(f"identity must be 'locals' or 'history', not {identity!r}")
        self.identity = identity
        self._check = check  # run on every new node: the machine's declaration checks
        self.nodes: list[Node] = []
        self._index: dict[Any, int] = {}
        self._edges: dict[tuple[int, Any], int] = {}
        self._starts: dict[tuple[Routine, tuple[Any, ...]], int] = {}
        self._live: dict[int, _Gen] = {}
        self.replays = 0

    def start(self, fn: Routine, args: tuple[Any, ...] = ()) -> int:
        """The node of a fresh instance of `fn(*args)`, primed to its first yield."""
        key = (fn, args)
        nid = self._starts.get(key)
        if nid is None:
            gen = self._make(fn, args)
            nid = self._settle(key, (), gen, lambda: next(gen))
            self._starts[key] = nid
        return nid

    def advance(self, nid: int, value: Any) -> int:
        """The node reached by sending `value` into node `nid`."""
        ekey = (nid, value)
        hit = self._edges.get(ekey)
        if hit is not None:
            return hit
        node = self.nodes[nid]
        gen = self._live.pop(nid, None) or self._rebuild(node)
        out = self._settle(node.root, (*node.history, value), gen, lambda: gen.send(value))
        self._edges[ekey] = out
        return out

    def _make(self, fn: Routine, args: tuple[Any, ...]) -> _Gen:
        gen = fn(*args)
        if not inspect.isgenerator(gen):
            raise ModelError(f"routine {routine_name(fn)} is not a generator function")
        return gen

    def _rebuild(self, node: Node) -> _Gen:
        self.replays += 1
        fn, args = node.root
        gen = self._make(fn, args)
        next(gen)
        for v in node.history:
            gen.send(v)
        return gen

    def _settle(self, root: tuple, history: tuple, gen: _Gen, resume: Callable[[], Any]) -> int:
        try:
            op = resume()
        except StopIteration as stop:
            return self._intern(("ret", root, _hashable(stop.value, root, "return value")),
                                Node(root, history, None, stop.value,
                                     codes=frozenset({_code(root[0])})), None)
        if not isinstance(op, Op):
            frame = gen.gi_frame
            where = f"line {frame.f_lineno}" if frame else "?"
            raise ModelError(f"routine {routine_name(root[0])} yielded {op!r} at {where}; "
                             "routines may only yield crossmod.machine.ops operations")
        line, func = _innermost(gen)
        if self.identity == "history":
            ident = ("h", root, history)
        else:
            ident = ("l", root, _frame_fingerprint(gen, root))
        return self._intern(ident, Node(root, history, op, None, line, func, _codes(gen)), gen)

    def _intern(self, ident: Any, node: Node, gen: _Gen | None) -> int:
        nid = self._index.get(ident)
        if nid is None:
            if self._check is not None:
                self._check(node)
            nid = len(self.nodes)
            self.nodes.append(node)
            self._index[ident] = nid
        if gen is not None and nid not in self._live:
            self._live[nid] = gen
        return nid


def _innermost(gen: _Gen) -> tuple[int, str]:
    while gen.gi_yieldfrom is not None and inspect.isgenerator(gen.gi_yieldfrom):
        gen = gen.gi_yieldfrom
    return (gen.gi_frame.f_lineno if gen.gi_frame else 0), gen.gi_code.co_name


def _codes(gen: object) -> frozenset[Any]:
    out = []
    while gen is not None and inspect.isgenerator(gen):
        out.append(gen.gi_code)
        gen = gen.gi_yieldfrom
    return frozenset(out)


def _code(fn: Any) -> Any:
    return getattr(fn, "__code__", None)


def _frame_fingerprint(gen: object, root: tuple) -> tuple:
    parts = []
    while gen is not None and inspect.isgenerator(gen):
        frame = gen.gi_frame
        if frame is None:
            break
        items = tuple(
            (k, _hashable(v, root, k)) for k, v in frame.f_locals.items()
            if not inspect.isgenerator(v)
        )
        parts.append((gen.gi_code, frame.f_lasti, items))
        gen = gen.gi_yieldfrom
    return tuple(parts)


def _hashable(v: Any, root: tuple, what: str) -> Any:
    try:
        hash(v)
    except TypeError:
        raise ModelError(
            f"routine {routine_name(root[0])}: {what} = {v!r} is not hashable; keep routine "
            "locals as ints, strings, tuples or frozen dataclasses") from None
    return v
