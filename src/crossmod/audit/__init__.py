"""crossmod.audit: find static branches and static calls on a kernel image's entry path whose
keys can still be flipped after boot, from the shipped binary alone.

A leaf package (STYLE Part 3): it imports nothing else from crossmod, only the stdlib,
pyelftools, capstone, zstandard and lz4. Modules: `layout` (record layouts), `unpack`
(bzImage and compression), `image` (ELF and module relocation), `kallsyms` (embedded symbol
table reader), `symbols`, `tables` (jump table / static call sites), `rules` (regions, keys,
capstone checks), `report`, and `run` (the driver, `audit_image`).
"""

from crossmod.audit.errors import ImageFormatError, SymbolsError
from crossmod.audit.report import AuditReport
from crossmod.audit.run import Options, audit_image

__all__ = ["AuditReport", "ImageFormatError", "Options", "SymbolsError", "audit_image"]
