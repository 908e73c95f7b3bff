"""The routine table of a worker of check/parallel.py: node ids come from the coordinator.

Owns: `WorkerTable` (point 2 of check/parallel.py) and `ParallelError`. Imports:
machine.routines, machine.state. Stays interpreted while check/parallel.py is compiled
(crossmod/engine_modules.txt): a worker turns the table forked from the coordinator into
this class by assigning `__class__`, which a compiled class's layout does not allow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossmod.machine.routines import Node, RoutineTable
from crossmod.machine.state import STACK


class ParallelError(Exception):
    """A worker process failed (its message says why)."""


class WorkerTable(RoutineTable):
    """A worker's routine table: ids come from the coordinator (`_ask`)."""

    _ask: Callable[[tuple], Any]
    _pending: int
    idents: dict[int, Any]

    @classmethod
    def adopt(cls, table: RoutineTable, ask: Callable[[tuple], Any]) -> WorkerTable:
        """Turn the table forked from the coordinator into a worker's."""
        table.__class__ = cls
        assert isinstance(table, WorkerTable)
        table._ask = ask
        table._pending = -1
        table.idents = {nid: ident for ident, nid in table._index.items()}
        return table

    def start(self, fn: Any, args: tuple[Any, ...] = ()) -> int:
        nid = self._starts.get((fn, args))
        if nid is None:
            raise ParallelError(f"routine start {fn!r}{args!r} was not tabulated before the "
                                "fork")
        return nid

    def advance(self, nid: int, value: Any) -> int:
        ekey = (nid, value)
        hit = self._edges.get(ekey)
        if hit is not None:
            return hit
        gid = self._ask(("adv", nid, value))
        if not self.knows(gid):
            node = self.nodes[nid]
            gen = self._live.pop(nid, None) or self._rebuild(node)
            self._pending = gid
            got = self._settle(node.root, (*node.history, value), gen,
                               lambda: gen.send(value))
            if got != gid:
                raise ParallelError(f"node {gid} settled as {got}: a routine is not "
                                    "deterministic")
        self._edges[ekey] = gid
        return gid

    def knows(self, gid: int) -> bool:
        return gid < len(self.nodes) and self.nodes[gid] is not None

    def learn(self, cpu: tuple) -> None:
        """Settle every node a CPU's tuple (sent by another worker) names that this worker
        has not met (the list of nodes stays a list: the machine indexes it on every
        step)."""
        for frame in cpu[STACK]:
            if not self.knows(frame[1]):
                self.materialize(frame[1])

    def materialize(self, gid: int) -> None:
        """Replay the edges that define `gid` from the nearest node this worker knows."""
        chain: list[tuple[int, Any]] = []
        at = gid
        while not self.knows(at):
            parent, value = self._ask(("def", at))
            chain.append((parent, value))
            at = parent
        chain.reverse()
        for parent, value in chain:
            self.advance(parent, value)

    def _intern(self, ident: Any, node: Node, gen: Any) -> int:
        nid = self._index.get(ident)
        if nid is None:
            if self._check is not None:
                self._check(node)
            nid = self._pending
            if nid >= len(self.nodes):
                self.nodes.extend([None] * (nid + 1 - len(self.nodes)))  # type: ignore[list-item]
            self.nodes[nid] = node
            self._index[ident] = nid
            self.idents[nid] = ident
        if gen is not None and nid not in self._live:
            self._live[nid] = gen
        return nid
