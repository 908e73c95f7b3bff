"""Host tools `crossmod record` and `crossmod lab` run, and the Debian package of each.

Owns: `Tool` (a program and the package that installs it), `missing` (which are absent,
each said in one line with the ``apt-get install`` that fixes it).

May import: the standard library only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass


class LabError(Exception):
    """A lab run cannot go on: the message is one line for the user."""


@dataclass(frozen=True)
class Tool:
    """A host program (or file), what it is needed for, and the Debian package with it."""

    name: str
    package: str
    purpose: str
    path: str | None = None  # a file to look for instead of `name` on $PATH

    def found(self) -> str | None:
        if self.path is not None:
            return self.path if os.path.exists(self.path) else None
        return shutil.which(self.name)

    def message(self) -> str:
        return (f"{self.name} not found ({self.purpose}): "
                f"apt-get install {self.package}")


TRACE_CMD = Tool("trace-cmd", "trace-cmd", "records the trace")
QEMU = Tool("qemu-system-x86_64", "qemu-system-x86", "boots the guest kernel")
GCC = Tool("gcc", "gcc", "compiles the guest's load programs")
LIBC_A = Tool("libc.a", "libc6-dev", "links the guest's load programs statically",
              path="/usr/lib/x86_64-linux-gnu/libc.a")
BUSYBOX = Tool("busybox", "busybox-static", "the guest's shell and tools",
               path="/bin/busybox")
LDD = Tool("ldd", "libc-bin", "finds trace-cmd's shared libraries for the guest")
DPKG_DEB = Tool("dpkg-deb", "dpkg", "unpacks the kernel package")
APT_GET = Tool("apt-get", "apt", "downloads the kernel package")
HACKBENCH = Tool("hackbench", "rt-tests", "the hackbench and mixed phases")

LAB_TOOLS = (QEMU, TRACE_CMD, GCC, LIBC_A, BUSYBOX, LDD)


def missing(tools: tuple[Tool, ...]) -> list[str]:
    """One line per absent tool, naming the package that installs it."""
    return [t.message() for t in tools if t.found() is None]
