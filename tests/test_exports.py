"""The public API: `crossmod.__all__` pinned name by name (trio's test_exports.py), the front
door `crossmod.check` callable and still the subpackage, in either import order, and the
package docstring's example run as a doctest."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys

import crossmod
import crossmod.check.explore

PUBLIC = [
    "NOP5", "Bounds", "MachineConfig", "ModelError", "PokeVariant", "ReplayError",
    "ScheduleError", "Site", "Step", "System", "Verdict", "call32", "check", "do_nothing",
    "do_sync_core", "generic_smp_call_function_single_interrupt", "jmp32",
    "kick_all_cpus_sync", "on_each_cpu", "ops", "replay", "send_IPI_allbutself",
    "send_IPI_mask", "smp_call_function", "smp_call_function_many_cond",
    "smp_text_poke_batch_add", "smp_text_poke_batch_finish", "smp_text_poke_int3_handler",
    "smp_text_poke_single", "text_poke", "text_poke_memory",
]


def test_the_public_names_are_exactly_these():
    assert crossmod.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(crossmod, name) is not None, name
    namespace: dict = {}
    exec("from crossmod import *", namespace)
    assert set(PUBLIC) <= set(namespace)


def test_check_is_the_front_door_and_the_subpackage():
    from crossmod import check

    assert check is crossmod.check
    assert crossmod.check.explore.explore.__name__ == "explore"
    assert list(inspect.signature(check).parameters) == ["system", "bounds", "progress",
                                                         "ignore"]


def test_either_import_order_keeps_both():
    # The shadowing depended on import order: try both in fresh interpreters.
    probe = ("v = crossmod.check(build('x86-memcpy')); "
             "print(v.verdict, crossmod.check.explore.explore.__name__)")
    for first in ("import crossmod.check.explore; import crossmod",
                  "import crossmod; import crossmod.check.explore"):
        code = f"{first}; from crossmod.catalogue import build; {probe}"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert out == "violation explore\n", first


def test_the_package_docstring_example_runs():
    result = doctest.testmod(crossmod)
    assert (result.attempted, result.failed) == (4, 0)
