"""crossmod.trace: ftrace / trace-cmd readers and IPI interference analysis (a leaf package)."""
