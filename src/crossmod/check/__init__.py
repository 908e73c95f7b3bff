"""The exhaustive explorer -- and, called, the front door: `crossmod.check(system)`.

`crossmod.check` is at once this subpackage (`import crossmod.check.explore`,
`crossmod.check.explore.explore`) and the function users call (`crossmod.check(system,
bounds, progress=..., ignore=...)`, which is `crossmod.check.api.check`). Why one object:
importing any submodule of the subpackage binds the attribute `check` of the `crossmod`
package to the subpackage, so a function of the same name in crossmod/__init__.py either
shadows the subpackage (then `crossmod.check.explore` fails) or is shadowed by it, depending
on import order. So the subpackage's module is made callable: its class is a ModuleType
subclass whose `__call__` is the front door (the documented pattern of the `sys.modules`
class assignment, Python 3.5+).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from typing import TYPE_CHECKING

__all__ = ["FrontDoor"]

if TYPE_CHECKING:
    from crossmod.check.api import Progress
    from crossmod.check.verdict import Bounds, Verdict
    from crossmod.machine.system import System


class FrontDoor(types.ModuleType):
    """The `crossmod.check` package module, callable as `crossmod.check.api.check`."""

    def __call__(self, system: System, bounds: Bounds | None = None, *,
                 progress: Progress | None = None, ignore: Iterable[str] = ()) -> Verdict:
        """Explore every interleaving of `system` (see `crossmod.check.api.check`)."""
        from crossmod.check.api import check

        return check(system, bounds, progress=progress, ignore=ignore)


sys.modules[__name__].__class__ = FrontDoor
