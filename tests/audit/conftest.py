"""Session fixtures for the audit tests: every image variant is built once, in a tmp dir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import builder


@dataclass(frozen=True)
class Fixtures:
    dir: Path
    obj: Path  # fixture.o: a relocatable object, audited like a .ko
    vmlinux: Path  # linked, with .symtab
    idle_nested: Path  # .cpuidle.text inside the noinstr range (as in Debian's 6.12)
    nosyms: Path  # stripped, no kallsyms space filled: no symbols at all
    kallsyms: dict[str, Path]  # stripped, embedded kallsyms in "v6.1" / "v6.12" order
    symbols: list[tuple[int, str, str]]


@pytest.fixture(scope="session")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    if not builder.have_toolchain():
        msg = "gcc, ld and objcopy are needed to build the audit fixtures"
        if os.environ.get("CI"):  # CI machines have gcc and binutils: never skip there
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("audit")
    objs = builder.compile_objects(out)
    vmlinux = builder.link(out, objs, "vmlinux")
    return Fixtures(
        dir=out,
        obj=objs[0],
        vmlinux=vmlinux,
        idle_nested=builder.link(out, objs, "vmlinux-idle-nested", idle_in_noinstr=True),
        nosyms=builder.stripped(vmlinux, out),
        kallsyms={o: builder.with_kallsyms(vmlinux, o, out) for o in ("v6.1", "v6.12")},
        symbols=builder.elf_symbols(vmlinux),
    )
