"""`System`: what every engine consumes -- a machine description plus what to call it.

Owns: the plain-data handle a protocol hands to an engine (SPIN's model handed to its
verifier). Imports: machine.state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossmod.machine.state import MachineConfig


@dataclass(frozen=True)
class System:
    """A protocol instance ready to check: its machine and a name for reports.

    `params` are the knobs that built it (cpus, nmis, fetch, variant...), shown in verdicts;
    `notes` is what the protocol's author wants a reader of the verdict to know.
    """

    name: str
    config: MachineConfig
    variant: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def describe_config(self) -> str:
        p = self.params
        parts = [f"{self.config.ncpus}cpu"]
        if self.config.nmis:
            parts.append(f"{self.config.nmis}nmi")
        parts.append(self.config.fetch)
        parts.append(self.config.memory)
        for k, v in p.items():
            if k not in ("cpus", "nmis", "fetch", "memory", "variant"):
                parts.append(f"{k}={v}")
        return " ".join(parts)
