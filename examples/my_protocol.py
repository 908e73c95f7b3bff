"""A protocol of your own, checked: Masami Hiramatsu's 2010 step list, written from scratch.

Run: python examples/my_protocol.py
"""

from __future__ import annotations

from crossmod import (
    NOP5,
    MachineConfig,
    Site,
    System,
    check,
    do_sync_core,
    generic_smp_call_function_single_interrupt,
    jmp32,
    on_each_cpu,
    ops,
)

SITE = Site("site", NOP5, ((NOP5, "nop"), (jmp32(0x40), "jmp l_yes")))
NEW = jmp32(0x40)


def write(offset: int, data: bytes, label: str):
    """A local text write that serializes the writing CPU only."""
    yield ops.TextStore("site", offset, data, label=label)
    yield ops.Serialize(label=label)


def patcher():
    yield ops.Store("fixup", "jmp l_yes", label="(2) set up the #BP fixup")
    yield from write(0, b"\xcc", "(3) int3")
    yield from on_each_cpu(do_sync_core, (), wait=True, label="(4) sync")
    yield from write(1, NEW[1:], "(5) tail")
    yield from write(0, NEW[:1], "(6) first byte")
    yield from on_each_cpu(do_sync_core, (), wait=True, label="(7) sync")
    yield ops.Store("fixup", None, label="(8) clear the fixup")
    yield ops.PatchReturned("site")


def int3_handler(site: str):
    """Resume at the fixup destination while one is set; else not ours."""
    return (yield ops.Load("fixup"))


def runner():
    """Another CPU running through the patch site twice."""
    for _ in range(2):
        yield ops.ExecSite("site")


def system(fetch: str) -> System:
    cfg = MachineConfig(ncpus=2, sites=(SITE,), tasks=((patcher, ()), (runner, ())),
                        int3_handler=int3_handler,
                        ipi_handler=generic_smp_call_function_single_interrupt,
                        globals=(("fixup", None),), fetch=fetch)
    return System("my-2010-protocol", cfg)


if __name__ == "__main__":
    for fetch in ("per-byte", "snapshot"):
        v = check(system(fetch))
        print(f"{fetch:9} {v.verdict:9} {v.property or '-':17} states={v.states}")
        if v.counterexample:
            print("          " + v.counterexample[-1].text)
