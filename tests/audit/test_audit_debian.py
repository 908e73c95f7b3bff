"""Opt-in (`pytest --run-network`): download the current Debian kernel image package with
`apt-get download`, audit its vmlinuz alone (no System.map, no debug package) and check that
the result is self-consistent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crossmod.audit import audit_image

META = "linux-image-amd64"


def _current_image_package() -> str:
    out = subprocess.run(["apt-cache", "depends", META], capture_output=True, text=True).stdout
    m = re.search(r"Depends:\s+(linux-image-\S+)", out)
    if m is None:
        pytest.fail(f"apt-cache does not know {META}: run apt-get update first")
    return m.group(1)


def _fetch_vmlinuz(dest: Path) -> tuple[str, Path]:
    pkg = _current_image_package()
    subprocess.run(["apt-get", "download", "-q", pkg], cwd=dest, check=True,
                   capture_output=True)
    deb = next(dest.glob("*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest / "root")], check=True)
    return pkg, next((dest / "root" / "boot").glob("vmlinuz-*"))


@pytest.mark.network
def test_debian_vmlinuz_alone_is_self_consistent(tmp_path):
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("needs apt-get and dpkg-deb (a Debian system)")
    pkg, vmlinuz = _fetch_vmlinuz(tmp_path)
    report = audit_image(str(vmlinuz))
    c = report.counts
    release = vmlinuz.name.removeprefix("vmlinuz-")
    assert report.kind == "bzImage" and report.symbol_source == "embedded kallsyms", pkg
    assert report.version.startswith(f"Linux version {release} ")
    assert c["jump_entries"] > 1000 and c["static_call_sites"] > 1000
    assert c["total"] == c["jump_entries"] + c["static_call_sites"]
    for kind in ("jump", "static_call"):
        per = c["per_region"][kind]
        assert sum(per.values()) == c["jump_entries" if kind == "jump" else "static_call_sites"]
    assert c["per_region"]["jump"]["noinstr"] > 0
    # Every decoded entry lands in the kernel text, and every JMP reaches its target.
    assert not [s for s in report.sites if s.problem and "outside" in s.problem]
    assert all(s.verified for s in report.sites if s.insn.startswith("jmp"))
    assert c["verified"] == c["total"]
    assert c["ro_after_init_keys"] > 0
    assert c["hazards_tracepoint"] <= c["tracepoint_sites"]
    assert all(s.key_name.startswith(("__tracepoint_", "__SCK__tp_func_"))
               for s in report.hazards if s.tracepoint)
    assert c["hazards"] == len(report.to_json()["hazards"])
