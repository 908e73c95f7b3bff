"""`crossmod simulate`: a whole machine for hours under each deferral policy (DESIGN.md
"simulate"): scenario files, a cost model, a seeded timed scheduler, replay of a recording.

Modules: `costs` (the cost model and where each number comes from), `scenario` (TOML
scenarios), `entrypath` (the entry/exit steps of kernel/entry.py as a timeline: which
sends a CPU's position lets through), `engine` (the scheduler), `replay` (a recording's
housekeeping activity against simulated isolated CPUs), `output` (JSON, text, plot,
Perfetto). May import: crossmod.kernel (Deferral), crossmod.trace (readers, classifier).
"""
