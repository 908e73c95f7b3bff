"""`fingerprint(config)`: what a recorded schedule was recorded on, as three short hashes.

Owns: `Fingerprint` and `fingerprint()`. Imports: stdlib, machine.state.

A schedule is a list of choice indices into each state's enabled moves: replayed on a
different machine it may silently run another interleaving. So a replay token carries
the fingerprint of the model it was recorded on, in three parts, so that a refusal can say
what changed:

  config   the configuration as data: CPUs, sites and their encodings, globals and per-CPU
           variables with their initial values, fetch/memory model, arch, NMIs and where
           they may arrive, symmetry and reader declarations, and every argument of the
           tasks and handlers (routines named by module and qualified name; the data their
           closures and default arguments hold included).
  code     the code of every routine reachable from the configuration: each function's
           bytecode, constants (nested code included), names, argument layout, closure and
           defaults, then -- transitively -- every function, class and datum it names
           through its module globals (`tp.smp_text_poke_single`: the module `tp`'s
           attribute), classes with their methods and dataclass field defaults.
  machine  the machine model's own source (crossmod/machine/*.py): the order `moves()`
           lists choices in, and what each op does, are the machine's.

Why this walk rather than hashing source files for the routines too: the walk follows what
the routines actually are at run time -- a user's protocol outside crossmod, a closure's
captured variant, a monkeypatched routine -- and an unrelated edit elsewhere does not
invalidate a token. It is sound for routines that reach code through names (globals,
module attributes, arguments, closures, defaults, methods of classes they name or receive),
which is how every routine here is written; code reached only through `getattr` with a
computed name is not followed. Line numbers and the text of docstrings are left out (they do
not change an interleaving); objects of the standard library are named, not walked (they are part of
the Python the token is replayed on). The machine's own modules are hashed as files: they
hold caches filled while exploring, which no walk of their objects may see.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import sys
import types
from dataclasses import dataclass
from importlib import resources
from typing import Any

from crossmod.machine.state import MachineConfig

PARTS = {"config": "its configuration", "code": "its routine code",
         "machine": "the machine model (crossmod/machine)"}


@dataclass(frozen=True)
class Fingerprint:
    """Three hex digests (see the module docstring); equal on an unchanged model."""

    config: str
    code: str
    machine: str

    def differs(self, other: Fingerprint) -> list[str]:
        """The parts (`PARTS` keys) in which `other` differs from this one."""
        return [k for k in PARTS if getattr(self, k) != getattr(other, k)]

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def fingerprint(config: MachineConfig) -> Fingerprint:
    """The fingerprint of the model `config` describes."""
    roots: list[object] = []
    config_hash = _digest(config, roots)
    return Fingerprint(config_hash, _code_digest(roots), machine_digest())


@functools.cache
def machine_digest() -> str:
    """The machine package's source, file by file in name order."""
    h = hashlib.blake2b(digest_size=8)
    files = sorted((f for f in resources.files("crossmod.machine").iterdir()
                    if f.name.endswith(".py")), key=lambda f: f.name)
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    if not files:  # no sources shipped: the version is all that names the machine
        from importlib import metadata

        h.update(metadata.version("crossmod").encode())
    return h.hexdigest()


def _digest(obj: object, roots: list[object]) -> str:
    enc = _Encoder(roots)
    enc.put(obj)
    return enc.h.hexdigest()


def _code_digest(roots: list[object]) -> str:
    """Every code-bearing object reachable from `roots` hashed on its own (its references to
    other code by name, those added to the walk), the digests combined in sorted order: a
    multiset, independent of the order they were met in."""
    seen: set[int] = set()
    keep: list[object] = []  # ids stay unique while the objects are alive
    digests: list[str] = []
    work = list(roots)
    while work:
        obj = work.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        found: list[object] = []
        enc = _Encoder(found)
        enc.own(obj)
        digests.append(enc.h.hexdigest())
        work.extend(found)
    h = hashlib.blake2b(digest_size=8)
    for d in sorted(digests):
        h.update(d.encode())
    return h.hexdigest()


def _foreign(obj: object) -> bool:
    """Named, never walked: the standard library, builtins and the machine (hashed as
    files); everything else -- crossmod's kernel and catalogue, a user's protocol -- is."""
    mod = getattr(obj, "__module__", None)  # None: made by exec() -- walked like any other
    return isinstance(mod, str) and _foreign_module(mod)


def _foreign_module(mod: str) -> bool:
    top = mod.partition(".")[0]
    return (top in sys.stdlib_module_names or top == "builtins"
            or mod == "crossmod.machine" or mod.startswith("crossmod.machine."))


# Class attributes that are bookkeeping, not behaviour. `__slotnames__` is the cache
# copyreg sets on a class the first time one of its instances is pickled (as
# check/parallel.py does with states): a token recorded after it must still fit.
_BOOKKEEPING = frozenset({
    "__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__annotations__",
    "__dataclass_fields__", "__dataclass_params__", "__match_args__", "__slots__",
    "__orig_bases__", "__parameters__", "__static_attributes__", "__firstlineno__",
    "__slotnames__"})


def _member(name: str, value: object) -> bool:
    """A class attribute that belongs to its behaviour: not bookkeeping, not an Enum's
    `_sunder_` tables, not a method dataclasses generated (compiled from text, filename
    "<string>": the fields, hashed anyway, decide them)."""
    if name in _BOOKKEEPING or (name.startswith("_") and name.endswith("_")
                                and not name.startswith("__")):
        return False
    fn = getattr(value, "__wrapped__", value)
    return not (isinstance(fn, types.FunctionType) and fn.__code__.co_filename == "<string>")


def _all_names(code: types.CodeType) -> set[str]:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _all_names(c)
    return out


def _n(k: int) -> bytes:
    return k.to_bytes(8, "little", signed=True)


class _Encoder:
    """A canonical byte stream of values into a hash. `put` writes a value as data:
    functions and classes by name (functions with the data of their closures and defaults),
    each one met appended to `roots` for the code walk; cycles as back-references. `own`
    writes one function or class itself for the code walk."""

    def __init__(self, roots: list[object]) -> None:
        self.h = hashlib.blake2b(digest_size=8)
        self.roots = roots
        self.memo: dict[int, int] = {}
        self.keep: list[object] = []  # ids stay unique while the objects are alive

    def w(self, tag: str, payload: bytes = b"") -> None:
        self.h.update(tag.encode() + _n(len(payload)) + payload)

    def text(self, tag: str, s: str) -> None:
        self.w(tag, s.encode("utf-8", "surrogatepass"))

    def name(self, tag: str, obj: object) -> None:
        self.text(tag, f"{getattr(obj, '__module__', None)}:"
                       f"{getattr(obj, '__qualname__', type(obj).__qualname__)}")

    def root(self, obj: object) -> None:
        if not _foreign(obj):
            self.roots.append(obj)

    def put(self, obj: object) -> None:
        if obj is None or obj is Ellipsis or isinstance(obj, bool):
            self.text("c", repr(obj))
        elif isinstance(obj, int | float | complex | str) and not isinstance(obj, enum.Enum):
            self.text({int: "i", float: "f", complex: "j", str: "s"}.get(type(obj), "o"),
                      repr(obj) if not isinstance(obj, str) else obj)
        elif isinstance(obj, bytes | bytearray):
            self.w("b", bytes(obj))
        elif id(obj) in self.memo:
            self.w("r", _n(self.memo[id(obj)]))
        else:
            self.memo[id(obj)] = len(self.memo)
            self.keep.append(obj)
            self._compound(obj)

    def _compound(self, obj: object) -> None:
        if isinstance(obj, tuple | list):
            self.w("t" if isinstance(obj, tuple) else "l", _n(len(obj)))
            for x in obj:
                self.put(x)
        elif isinstance(obj, dict | types.MappingProxyType):
            self.w("d", _n(len(obj)))
            for k, v in self._ordered(list(obj.items())):
                self.put(k)
                self.put(v)
        elif isinstance(obj, set | frozenset):  # by element digests: string hashing varies
            self.w("e", _n(len(obj)))
            for d in sorted(_digest(x, self.roots) for x in obj):
                self.text("d", d)
        elif isinstance(obj, enum.Enum):
            self.name("E", type(obj))
            self.text("n", obj.name)
            self.root(type(obj))
        elif isinstance(obj, types.FunctionType):
            self.name("F", obj)
            self._data_of(obj)
            self.root(obj)
        elif isinstance(obj, type):
            self.name("K", obj)
            self.root(obj)
        elif isinstance(obj, types.MethodType):
            self.w("M")
            self.put(obj.__func__)
            self.put(obj.__self__)
        elif isinstance(obj, functools.partial):
            self.w("P")
            self.put(obj.func)
            self.put(obj.args)
            self.put(obj.keywords)
        elif isinstance(obj, types.ModuleType):
            self.text("m", obj.__name__)
        elif isinstance(obj, types.CodeType):
            self.code(obj)
        elif isinstance(obj, property):
            self.w("p")
            for fn in (obj.fget, obj.fset, obj.fdel):
                self.put(fn)
        elif isinstance(obj, staticmethod | classmethod):
            self.w("S" if isinstance(obj, staticmethod) else "Q")
            self.put(obj.__func__)
        elif isinstance(obj, types.BuiltinFunctionType | types.GenericAlias | types.UnionType):
            self.text("T", repr(obj))  # a builtin's or a type expression's text is all it is
        elif dataclasses.is_dataclass(obj):
            self.name("D", type(obj))
            self.root(type(obj))
            for f in dataclasses.fields(obj):
                if f.compare:  # the others are derived (MachineConfig's indexes)
                    self.text("a", f.name)
                    self.put(getattr(obj, f.name))
        else:
            self.name("O", type(obj))
            self.root(type(obj))
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict):
                self.put(state)
            for slot in getattr(type(obj), "__slots__", ()):
                self.text("a", slot)
                self.put(getattr(obj, slot, None))

    def _data_of(self, fn: types.FunctionType) -> None:
        """What a function holds besides its code: defaults and closure cells."""
        self.put(fn.__defaults__)
        self.put(fn.__kwdefaults__)
        cells = fn.__closure__ or ()
        self.w("C", _n(len(cells)))
        for c in cells:
            try:
                self.put(c.cell_contents)
            except ValueError:  # an empty cell: a name bound after the function was made
                self.w("0")

    def _ordered(self, pairs: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """A mapping's items in an order that depends on neither insertion nor string
        hashing: by key when the keys are strings, else by the keys' digests."""
        if all(isinstance(k, str) for k, _ in pairs):
            return sorted(pairs, key=lambda kv: str(kv[0]))
        return sorted(pairs, key=lambda kv: _digest(kv[0], self.roots))

    # -- the code walk: one function or class itself, other code by name -----------------

    def own(self, obj: object) -> None:
        if isinstance(obj, types.FunctionType):
            self.name("F", obj)
            code, doc = obj.__code__, obj.__doc__
            self.code(code, skip_doc=doc is not None and bool(code.co_consts)
                      and code.co_consts[0] == doc)
            self._data_of(obj)
            for name, value in self._globals(obj):
                self.text("g", name)
                self.put(value)
        elif isinstance(obj, type):
            self.name("K", obj)
            self.put(tuple(b for b in obj.__bases__ if b is not object))
            if dataclasses.is_dataclass(obj):
                for f in dataclasses.fields(obj):
                    self.text("a", f.name)
                    self.put(None if f.default is dataclasses.MISSING else f.default)
                    self.put(None if f.default_factory is dataclasses.MISSING
                             else f.default_factory)
            if isinstance(obj, enum.EnumMeta):
                member: enum.Enum
                for member in obj:
                    self.text("n", member.name)
                    self.put(member.value)
            for name, value in sorted(vars(obj).items()):
                if _member(name, value):
                    self.text("v", name)
                    self.put(value)

    def code(self, code: types.CodeType, skip_doc: bool = False) -> None:
        """Bytecode, exception table, argument layout, constants (nested code by the same
        rule), names; not the file name, line numbers or (`skip_doc`) the docstring."""
        self.w("X", code.co_code)
        self.w("x", code.co_exceptiontable)
        for k in (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                  code.co_flags):
            self.w("i", _n(k))
        consts = code.co_consts[1:] if skip_doc else code.co_consts
        self.w("k", _n(len(consts)))
        for c in consts:
            if isinstance(c, types.CodeType):
                self.text("n", c.co_name)
                self.code(c)
            else:
                self.put(c)
        for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
            self.put(names)

    def _globals(self, fn: types.FunctionType) -> list[tuple[str, object]]:
        """The module globals `fn` names, and the attributes it names of the modules among
        them (`tp.smp_text_poke_single` names `tp` and `smp_text_poke_single`)."""
        names = sorted(_all_names(fn.__code__))
        g = fn.__globals__
        out: list[tuple[str, object]] = []
        for n in names:
            if n not in g:
                continue  # a builtin, or only an attribute name
            v = g[n]
            out.append((n, v))
            if isinstance(v, types.ModuleType) and not _foreign_module(v.__name__):
                mod = vars(v)
                out += [(f"{n}.{a}", mod[a]) for a in names
                        if a in mod and not isinstance(mod[a], types.ModuleType)]
        return out
