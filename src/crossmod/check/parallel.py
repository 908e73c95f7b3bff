"""The breadth-first search of check/explore.py, spread over worker processes.

Owns: `explore_parallel(system, bounds, jobs=)` -> Verdict. Imports: machine, check.explore
(its verdict and replay), check.reduction, check.verdict, check.parallel_table (the workers'
routine table, point 2). Never imports kernel or catalogue. Compiled with mypyc like the
sequential search (crossmod/engine_modules.txt): the level's bookkeeping is per successor.

The design, and why each part is sound:

1. Level-synchronous breadth-first search. The coordinator (this process) forks `jobs`
   workers once the initial state is built; each worker owns the states whose hash falls in
   its share (`_owner`, a hash of its first CPU's tuple: forked processes share Python's
   hash secret, so every process computes the same owner), keeps their parent links,
   expands its part of each level and sends every successor to its owner, which keeps it
   if it is new. States travel
   in batches, as numbered parts (`_Encoder`: a part is pickled the first time it crosses a
   channel, then named by its number). A level costs two rounds through the coordinator
   (expand and send; merge), four when a reduced expansion must ask the C3 question of
   point 3 (expand; answer; resolve and send; merge).
2. One routine table. A state names routine suspension points by node id
   (machine/routines.py), and ids are handed out lazily, in the order a process meets them:
   two processes would give one id two meanings. So the coordinator's table is the only one
   that assigns ids. A worker that sends a value into a node along an edge it has not
   tabulated asks the coordinator for the id of the node reached (`("adv", nid, value)`; the
   coordinator steps its own table, so it finds the same node identity a worker would),
   then settles the node itself under that id; a worker that meets an id it has never seen
   (in a state another worker sent) asks for the edge that defined it and replays it. Every
   routine start (tasks, IPI, NMI and INT3 handlers) is tabulated before the fork.
3. One order of the level: each state carries a key, the position its first discovery has
   in the sequential search's order (the parent's key, then the index of the successor in
   the parent's expansion, 8 bits). The owner keeps, for a state reached several times, the
   smallest key and the move, which make the parent link check/explore.py keeps (the
   parent is the state of key `key >> 8`, found by asking every worker); the
   partial-order reduction's C3 proviso asks whether a successor was known before the level
   (a query round to its owner); and the first violation is the one with the smallest key:
   the counterexample, and the states counted when it is found, are the sequential search's.
   Each owner's batch is in key order, so the merge sorts the concatenated runs (a merge of
   sorted runs) and keeps a state's first arrival with one dict operation.
4. CPU symmetry ranks CPU states by a digest of their content (node ids replaced by a digest
   of the node's identity) instead of by the order they were first seen: every process
   ranks alike. Where the representative is unique (machine/symmetry.py, point 3) the states
   stored are those of the sequential search; where equal keys hide a difference between
   members, either ranking is sound but the two may store a few different states.
5. The counterexample is rebuilt by the coordinator from the owners' parent links and
   replayed through `Machine.step` (check/explore.py `_verdict`), like the sequential one.

Bounds: `max_states` and `max_depth` are checked between levels, `max_seconds` also inside
a level; a search stopped by one may count more states than the sequential one would.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import multiprocessing as mp
import pickle
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import fields, is_dataclass
from enum import Enum
from multiprocessing.connection import Connection, wait
from types import CodeType, FunctionType
from typing import Any

from crossmod.check.explore import _verdict, explore
from crossmod.check.parallel_table import ParallelError, WorkerTable
from crossmod.check.reduction import ample
from crossmod.check.shorten import shortest
from crossmod.check.verdict import Bounds, Property, StopReason, Verdict
from crossmod.machine.cpu import Violation
from crossmod.machine.machine import Machine, Move
from crossmod.machine.state import CPUS, STACK
from crossmod.machine.symmetry import Canonicalizer
from crossmod.machine.system import System

Progress = Callable[[int, int, int], None]
_SHIFT = 8  # bits of a key per level: a state has fewer than 256 successors


def _prestart(m: Machine) -> None:
    """Tabulate every routine start the machine can make (machine/machine.py)."""
    cfg = m.cfg
    if cfg.ipi_handler is not None:
        m.routines.start(cfg.ipi_handler, ())
    if cfg.nmi_handler is not None:
        m.routines.start(*cfg.nmi_handler)
    if cfg.int3_handler is not None:
        for site in cfg.sites:
            m.routines.start(cfg.int3_handler, (site.name,))


# ---- ranks every process agrees on (point 4) -----------------------------------------------

def _stable(x: Any, out: list[str]) -> None:
    """A text for `x` that is the same in every process and run (no addresses, no
    hash-dependent set order)."""
    t = type(x)
    if t is tuple or t is list:
        out.append("(")
        for y in x:
            _stable(y, out)
            out.append(",")
        out.append(")")
    elif t is int or t is bool:
        out.append(str(int(x)))  # equal values, one text: True == 1 in a dict key
    elif t is float:
        out.append(str(int(x)) if x.is_integer() else repr(x))
    elif t is str or t is bytes or x is None:
        out.append(repr(x))
    elif t is frozenset or t is set:
        out.append("{" + ",".join(sorted(_text(y) for y in x)) + "}")
    elif t is CodeType:
        out.append(f"<code {x.co_filename}:{x.co_firstlineno}:{x.co_qualname}>")
    elif t is FunctionType:
        out.append(f"<fn {x.__module__}.{x.__qualname__}>")
    elif isinstance(x, Enum):
        out.append(f"{t.__qualname__}.{x.name}")
    elif is_dataclass(x):
        out.append(t.__qualname__)
        _stable(tuple(getattr(x, f.name) for f in fields(x)), out)
    else:
        out.append(repr(x))


def _text(x: Any) -> str:
    out: list[str] = []
    _stable(x, out)
    return "".join(out)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=12).digest()


class _ContentRank:
    """Ranks a CPU state's abstract form by a digest of its content, node ids by their
    identity (the same in every process, unlike first sight)."""

    def __init__(self, m: Machine) -> None:
        self._table = m.routines
        self._nodes: dict[int, str] = {}
        self._inverse: dict[int, Any] = {}
        self._fields: dict[Any, str] = {}

    def __call__(self, a: tuple) -> bytes:
        parts = ["|".join(f"{f[0]}:{self._node(f[1])}:{_text(f[2:])}" for f in a[STACK])]
        for i, v in enumerate(a):
            if i != STACK:
                parts.append(self._field(v))
        return _digest("#".join(parts))

    def _field(self, v: Any) -> str:
        s = self._fields.get(v)
        if s is None:
            s = self._fields[v] = _text(v)
        return s

    def _node(self, nid: int) -> str:
        s = self._nodes.get(nid)
        if s is None:
            table = self._table
            if isinstance(table, WorkerTable):
                ident = table.idents[nid]
            else:
                if nid not in self._inverse:
                    self._inverse = {n: i for i, n in table._index.items()}
                ident = self._inverse[nid]
            s = self._nodes[nid] = _digest(_text(ident)).hex()
        return s


def content_canonicalizer(m: Machine) -> Canonicalizer:
    """The canonicalizer of the parallel search: CPU states ranked by content."""
    return Canonicalizer(m.cfg, rank=_ContentRank(m))


# ---- the worker ---------------------------------------------------------------------------

class _Record:
    """One expanded state of the level: its key, successors (each with its owner) and
    first violation."""

    __slots__ = ("found", "key", "moves", "out", "pending", "state")

    def __init__(self, key: int, state: tuple, moves: list[Move]) -> None:
        self.key, self.state, self.moves = key, state, moves
        self.out: list[tuple[tuple, Move, int]] = []
        self.found: tuple | None = None
        self.pending = False


# A successor on its way to its owner: (key, state, move). Keys are unique within a level,
# so a list of them sorts by key alone, never comparing states.
_Item = tuple[int, tuple, Move | None]


class _Worker:
    def __init__(self, me: int, jobs: int, conn: Connection, m: Machine, por: bool,
                 symmetry: bool, ignore: frozenset[str], init: tuple) -> None:
        self.me, self.jobs, self.conn, self.m = me, jobs, conn, m
        WorkerTable.adopt(m.routines, self._ask)
        self.canon = content_canonicalizer(m) if symmetry else None
        self.por, self.ignore = por, ignore
        # state -> (key, move that first reached it); keys are unique across levels
        # (the initial state's is 1, so level d holds [256**d, 2 * 256**d))
        self.parent: dict[tuple, tuple[int, Move | None]] = {}
        self.frontier: list[tuple[int, tuple]] = []
        if _owner(init, jobs) == me:
            self.parent[init] = (1, None)
            self.frontier.append((1, init))
        self.records: list[_Record] = []
        self._local: list[_Item] = []
        self.encoders = [_Encoder() for _ in range(jobs)]
        self.decoders = [_Decoder() for _ in range(jobs)]

    def _ask(self, req: tuple) -> Any:
        self.conn.send(("rpc", req))
        return self.conn.recv()

    def run(self) -> None:
        while True:
            cmd, *args = self.conn.recv()
            if cmd == "stop":
                return
            out = getattr(self, "do_" + cmd)(*args)
            self.conn.send(("done", out))

    # -- the phases of a level: expand, [answer, resolve,] merge --
    def do_expand(self, deadline: float | None
                  ) -> tuple[list[bytes | None] | None, list[bytes | None] | None,
                             int | None, bool]:
        """Expand the frontier in key order up to this worker's first violation. Returns
        the successors by owner (None while some reduced expansion awaits its C3 answers:
        then `do_resolve` sends them), the C3 queries by owner (point 3: for the reduced
        expansions that met no cut move; None: no query), the key of this worker's first
        violation and whether the deadline passed."""
        self.records = records = []
        timed_out = False
        m, por, ignore = self.m, self.por, self.ignore
        for n, (key, s) in enumerate(self.frontier):
            if deadline is not None and n % 64 == 0 and time.perf_counter() > deadline:
                timed_out = True
                break
            mv = m.moves(s)
            rec = _Record(key, s, mv)
            records.append(rec)
            if not mv:
                if any(cpu[STACK] for cpu in s[CPUS]) and "deadlock" not in ignore:
                    rec.found = (Property.DEADLOCK, s, None, "")
                    break
                continue
            amp = ample(m, s, mv) if por else mv
            rec.out, rec.found, cut = self._successors(s, amp)
            if len(amp) < len(mv):
                if cut:
                    rec.out, rec.found, _ = self._successors(s, mv)
                else:
                    rec.pending = True
            if rec.found is not None:
                break
        self.frontier = []
        found = records[-1].key if records and records[-1].found is not None else None
        queries: list[list[_Item]] = [[] for _ in range(self.jobs)]
        pending = False
        me = self.me
        for rec in records:
            if rec.pending:
                pending = True
                for t, _, d in rec.out:
                    if d != me:
                        queries[d].append((0, t, None))
        if not pending:
            return self._send(), None, found, timed_out
        # the queried states travel as numbered parts too, on the channel the successors
        # take next (each channel's encoder and decoder see its messages in one order)
        return None, [self.encoders[d].encode(q) if q else None
                      for d, q in enumerate(queries)], found, timed_out

    def do_answer(self, asked: list[bytes | None]) -> list[bytes | None]:
        """Which of the states each worker asked about were known before this level."""
        parent = self.parent
        learn = self._learn()
        return [None if blob is None or d == self.me else
                _dump([t in parent for _, t, _ in self.decoders[d].decode(blob, learn)])
                for d, blob in enumerate(asked)]

    def _learn(self) -> Callable[[tuple], None] | None:
        return self.m.routines.learn if self.jobs > 1 else None  # type: ignore[attr-defined]

    def do_resolve(self, answers: list[bytes | None]
                   ) -> tuple[list[bytes | None], int | None]:
        """C3: a reduced expansion reaching a state known before the level is redone with
        every move (check/explore.py); then the successors by owner, and the key of this
        worker's first violation (a full expansion may meet one the reduced one did not)."""
        known = {d: iter(_load(blob)) for d, blob in enumerate(answers) if blob is not None}
        me, parent = self.me, self.parent
        found = None
        for k, rec in enumerate(self.records):
            if rec.pending:
                seen = False
                for t, _, d in rec.out:
                    old = t in parent if d == me else next(known[d])
                    seen = seen or old
                if seen:
                    rec.out, rec.found, _ = self._successors(rec.state, rec.moves)
            if rec.found is not None:
                found = rec.key
                del self.records[k + 1:]
                break
        return self._send(), found

    def _send(self) -> list[bytes | None]:
        """The level's successors, by owner, each owner's in key order (this worker's
        are kept for its merge)."""
        jobs, me = self.jobs, self.me
        batches: list[list[_Item]] = [[] for _ in range(jobs)]
        for rec in self.records:
            base = rec.key << _SHIFT
            if jobs == 1:
                batches[0].extend([(base | i, t, move)
                                   for i, (t, move, _) in enumerate(rec.out)])
            else:
                for i, (t, move, d) in enumerate(rec.out):
                    batches[d].append((base | i, t, move))
        self._local = batches[me]
        return [None if d == me else self.encoders[d].encode(b)
                for d, b in enumerate(batches)]

    def do_merge(self, got: list[bytes | None], cutoff: int | None
                 ) -> tuple[int, int, tuple | None]:
        """Keep the new states, each with its first discovery (smallest key), up to the
        level's first violation; the next frontier in key order."""
        items = self._local
        self._local = []
        learn = self._learn()
        for d in range(self.jobs):
            if d != self.me:
                items += self.decoders[d].decode(got[d], learn)
        # each owner's list is in key order: sorting their concatenation merges the runs
        if self.jobs > 1:
            items.sort(key=_first)
        parent = self.parent
        limit = None if cutoff is None else ((cutoff + 1) << _SHIFT)
        frontier = self.frontier
        for key, t, move in items:
            if limit is not None and key >= limit:
                break
            n = len(parent)
            parent.setdefault(t, (key, move))
            if len(parent) != n:  # one hash: t is new (no `is` test: crossmod/_engine.py)
                frontier.append((key, t))
        transitions = sum(len(r.out) for r in self.records if cutoff is None or r.key <= cutoff)
        found = None
        if cutoff is not None:
            found = next((r.found for r in self.records if r.key == cutoff), None)
        self.records = []
        return len(frontier), transitions, found

    def do_link(self, s: tuple) -> tuple[int, Move | None]:
        """The key `s` was stored with and the move that reached it."""
        return self.parent[s]

    def do_state(self, key: int) -> tuple | None:
        """The stored state of that key, if this worker owns it (a scan: only a
        counterexample's path asks)."""
        return next((t for t, (k, _) in self.parent.items() if k == key), None)

    def do_size(self) -> int:
        return len(self.parent)

    def _successors(self, s: tuple, moves: list[Move]
                    ) -> tuple[list[tuple[tuple, Move, int]], tuple | None, bool]:
        """(successor, move, owner) triples, the first violation met and whether a move was
        cut for breaking an ignored property."""
        out: list[tuple[tuple, Move, int]] = []
        cut = False
        canon, m, jobs = self.canon, self.m, self.jobs
        for move in moves:
            try:
                t, _ = m.step(s, move)
            except Violation as v:
                if v.prop in self.ignore:
                    cut = True
                    continue
                return out, (v.prop, s, move, v.message), cut
            if canon is not None:
                t, _ = canon(t, s)
            out.append((t, move, _owner(t, jobs) if jobs > 1 else 0))
        if len(out) >= 1 << _SHIFT:
            raise ParallelError(f"a state with {len(out)} successors: keys hold {_SHIFT} bits")
        return out, None, cut


def _owner(t: tuple, jobs: int) -> int:
    """The worker that owns state `t` (point 1): by its first CPU's tuple, so that the
    successors reached by another CPU's move mostly stay with their parent's owner (no
    transfer, and its memo tables see related states)."""
    return hash(t[CPUS][0]) % jobs


def _first(item: _Item) -> int:
    return item[0]


class _Encoder:
    """States for one other worker, as numbers: each part (globals, text, a CPU's tuple...)
    and each move is sent once per channel, then named by its number. Most successors
    differ from a state sent before in one CPU, so a state costs a few small ints instead
    of its whole tree; the receiver's copies share their parts too. A part that is the
    very object of the same place in the previous state sent (a successor's parts are
    mostly its parent's, and siblings travel together) reuses its number without hashing
    it; `is` here only saves work (a fresh box of an equal tuple takes the dict's way)."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.moves: dict[Move | None, int] = {}
        self.last: list[Any] = []
        self.codes: list[int] = []

    def _id(self, part: Any, new: list[Any]) -> int:
        ids = self.ids
        i = ids.get(part)
        if i is None:
            i = ids[part] = len(ids)
            new.append(part)
        return i

    def encode(self, items: list[_Item]) -> bytes:
        new: list[Any] = []
        newmoves: list[Move | None] = []
        out = []
        moves = self.moves
        last, codes = self.last, self.codes
        for key, t, move in items:
            parts = [t[0], t[1], *t[2], t[4]]
            if len(parts) != len(last):
                last, codes = [None] * len(parts), [0] * len(parts)
            for k, part in enumerate(parts):
                if part is not last[k]:
                    codes[k] = self._id(part, new)
                    last[k] = part
            mi = moves.get(move)
            if mi is None:
                mi = moves[move] = len(moves)
                newmoves.append(move)
            out.append((tuple(codes), t[3], key, mi))
        self.last, self.codes = last, codes
        return _dump((new, newmoves, out))


class _Decoder:
    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.moves: list[Move | None] = []

    def decode(self, blob: bytes | None, learn: Callable[[tuple], None] | None
               ) -> list[_Item]:
        """The states of `blob`; `learn` is shown each CPU tuple the first time it comes
        (the nodes another worker's states name are settled here, point 2)."""
        if not blob:
            return []
        new, newmoves, items = pickle.loads(blob)
        parts, moves = self.parts, self.moves
        start = len(parts)
        parts.extend(new)
        moves.extend(newmoves)
        if learn is not None and new:
            done: set[int] = set()
            for code, _, _, _ in items:
                for i in code[2:-1]:
                    if i >= start and i not in done:
                        done.add(i)
                        learn(parts[i])
        return [(key, (parts[code[0]], parts[code[1]],
                       tuple([parts[i] for i in code[2:-1]]), nmis, parts[code[-1]]),
                 moves[mi])
                for code, nmis, key, mi in items]


def _dump(x: Any) -> bytes:
    return pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL)


def _load(b: bytes | None) -> Any:
    return pickle.loads(b) if b else []


def _worker_main(me: int, jobs: int, conn: Connection, m: Machine, por: bool,
                 symmetry: bool, ignore: frozenset[str], init: tuple) -> None:
    # The stored states are acyclic tuples, millions of them: the cyclic collector's
    # full passes over them would cost more than the search (a routine's frames are the
    # only cycles, and they are few).
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    try:
        _Worker(me, jobs, conn, m, por, symmetry, ignore, init).run()
    except BaseException as e:  # the coordinator reports it; nothing else can
        conn.send(("error", f"worker {me}: {type(e).__name__}: {e}"))
    finally:
        conn.close()


# ---- the coordinator ----------------------------------------------------------------------

class _Pool:
    """The workers, and the coordinator's answers to their routine-table questions."""

    def __init__(self, m: Machine, conns: list[Connection], procs: list[Any]) -> None:
        self.m, self.conns, self.procs = m, conns, procs
        self.defs: dict[int, tuple[int, Any]] = {}

    def call(self, cmds: list[tuple | None]) -> list[Any]:
        """Send worker k `cmds[k]` (None: nothing); serve their questions until every one
        sent something has answered."""
        for conn, cmd in zip(self.conns, cmds, strict=True):
            if cmd is not None:
                conn.send(cmd)
        out: list[Any] = [None] * len(self.conns)
        waiting = {k for k, cmd in enumerate(cmds) if cmd is not None}
        index = {id(c): k for k, c in enumerate(self.conns)}
        while waiting:
            for ready in wait([self.conns[k] for k in waiting]):
                k = index[id(ready)]
                conn = self.conns[k]
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    raise ParallelError(f"worker {k} exited") from None
                if kind == "rpc":
                    conn.send(self._serve(payload))
                elif kind == "error":
                    raise ParallelError(payload)
                else:
                    out[k] = payload
                    waiting.discard(k)
        return out

    def ask(self, k: int, cmd: tuple) -> Any:
        cmds: list[tuple | None] = [None] * len(self.conns)
        cmds[k] = cmd
        return self.call(cmds)[k]

    def all(self, *cmd: Any) -> list[Any]:
        return self.call([cmd] * len(self.conns))

    def _serve(self, req: tuple) -> Any:
        if req[0] == "adv":
            _, nid, value = req
            table = self.m.routines
            before = len(table.nodes)
            gid = table.advance(nid, value)
            if len(table.nodes) > before:
                self.defs[gid] = (nid, value)
            return gid
        if req[0] == "def":
            return self.defs[req[1]]
        raise ParallelError(f"unknown request {req[0]!r}")

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()


class _RemoteParents:
    """The owners' parent links, as `_verdict` reads them (len and lookup)."""

    def __init__(self, pool: _Pool, jobs: int, size: int) -> None:
        self.pool, self.jobs, self.size = pool, jobs, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, s: tuple) -> tuple[tuple, Move] | None:
        key, move = self.pool.ask(_owner(s, self.jobs), ("link", s))
        if move is None:
            return None
        states = [p for p in self.pool.all("state", key >> _SHIFT) if p is not None]
        if len(states) != 1:
            raise ParallelError(f"{len(states)} states hold key {key >> _SHIFT}")
        return states[0], move

    def __iter__(self) -> Iterator[tuple]:
        raise TypeError("the parent links stay with their owners")


def explore_parallel(system: System, bounds: Bounds | None = None, jobs: int = 2,
                     progress: Progress | None = None) -> Verdict:
    """Explore every interleaving of `system` within `bounds` with `jobs` worker processes
    (the module docstring says how; the verdict is check/explore.py's)."""
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    if "fork" not in mp.get_all_start_methods():
        raise ParallelError("parallel exploration needs the fork start method")
    bounds = bounds or Bounds()
    t0 = time.perf_counter()
    m = Machine(system.config, identity=bounds.identity)
    m.narrate = False  # the counterexample's replay narrates (check/explore.py)
    symmetry = bool(bounds.symmetry and system.config.symmetric)
    por = bounds.por  # as check/explore.py: reduction.py decides per state
    ignore = bounds.ignore
    canon = content_canonicalizer(m) if symmetry else None
    init = m.initial_state()
    if canon:
        init, _ = canon(init)
    _prestart(m)
    ctx = mp.get_context("fork")
    conns, procs = [], []
    for k in range(jobs):
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=_worker_main, daemon=True,
                        args=(k, jobs, theirs, m, por, symmetry, ignore, init))
        p.start()
        theirs.close()
        conns.append(mine)
        procs.append(p)
    pool = _Pool(m, conns, procs)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        v = _search(system, bounds, pool, m, canon, jobs, t0, por, progress)
    finally:
        pool.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    v.stats["jobs"] = jobs
    v.stats["worker_cpu_seconds"] = round(after.ru_utime + after.ru_stime
                                          - before.ru_utime - before.ru_stime, 2)
    if bounds.liveness and v.verdict == "safe" and "liveness" not in bounds.ignore:
        from crossmod.check.liveness import liveness

        return liveness(system, bounds, v, progress)
    # as check/explore.py: a shortest trail, by the sequential search ranking alike
    ranking = content_canonicalizer if symmetry else None
    return shortest(system, bounds, v, lambda sys_, b: explore(sys_, b, ranking=ranking))


def _search(system: System, bounds: Bounds, pool: _Pool, m: Machine,
            canon: Canonicalizer | None, jobs: int, t0: float, por: bool,
            progress: Progress | None) -> Verdict:
    states, transitions, depth, frontier = 1, 0, 0, 1
    stop: tuple[StopReason, float | None] = (StopReason.EXHAUSTED, None)
    found = None
    while frontier and found is None:
        depth += 1
        if depth > bounds.max_depth:
            stop = (StopReason.STEP_BOUND, bounds.max_depth)
            break
        deadline = None if bounds.max_seconds is None else t0 + bounds.max_seconds
        expanded = pool.all("expand", deadline)
        timed_out = any(t for _, _, _, t in expanded)
        sent = [b for b, _, _, _ in expanded]
        keys = [f for _, _, f, _ in expanded]
        waiting = [k for k, (b, _, _, _) in enumerate(expanded) if b is None]
        if waiting:  # C3 (point 3): the owners answer, then the askers send
            queries = [q for _, q, _, _ in expanded]
            asked: list[list[bytes | None]] = [[None] * jobs for _ in range(jobs)]
            if any(q is not None and q[d] is not None for q in queries for d in range(jobs)):
                asked = pool.call([("answer", [None if q is None else q[d] for q in queries])
                                   for d in range(jobs)])
            resolved = pool.call([("resolve", [asked[d][k] for d in range(jobs)])
                                  if k in waiting else None for k in range(jobs)])
            for k in waiting:
                sent[k], keys[k] = resolved[k]
        found_keys = [f for f in keys if f is not None]
        cutoff = min(found_keys) if found_keys else None
        merged = pool.call([("merge", [b[k] for b in sent], cutoff)
                            for k in range(jobs)])
        frontier = sum(n for n, _, _ in merged)
        states += frontier
        transitions += sum(t for _, t, _ in merged)
        found = next((f for _, _, f in merged if f is not None), None)
        if progress:
            progress(states, transitions, depth)
        if found is not None:
            break
        if timed_out or (bounds.max_seconds and time.perf_counter() - t0 > bounds.max_seconds):
            stop = (StopReason.TIME_LIMIT, bounds.max_seconds)
            break
        if states > bounds.max_states:
            stop = (StopReason.STATE_LIMIT, bounds.max_states)
            break
    parents = _RemoteParents(pool, jobs, states)
    return _verdict(system, m, canon, parents, found, stop,
                    transitions, depth, t0, por, bounds.ignore)
