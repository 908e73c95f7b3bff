"""crossmod.audit: kernel image auditor for mutable static branches on the entry path (a leaf package)."""
