"""Kernel routines as generators, named after the C they follow (imports machine.ops only)."""
