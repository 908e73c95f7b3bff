"""crossmod.trace: ftrace / trace-cmd readers and IPI interference analysis (a leaf package).

Which IPIs hit the isolated CPUs in a real trace, from where, and what deferral to the next
kernel entry would remove. Layout (imports point down; nothing outside this package is
imported, so it works as a standalone tool):

    events.py                 the record contract every reader satisfies (read this first)
    source.py                 open any supported file, detect its kind, merge several
    text.py                   trace-cmd report and tracefs trace/trace_pipe text
    dat.py, datpages.py,      trace.dat v6/v7: metadata, ring-buffer pages,
    datmeta.py, layout.py,    cursors and kallsyms, binary layout,
    formats.py, merge.py      event format descriptions, per-CPU merge
    analyze.py                one pass over the events: counters and state
    causes.py, whatif.py      stack signatures; the deferral classification (KERNEL.md F.6)
    report.py, render.py      the report dict (--json) and its text tables
    plot.py, perfetto.py      --plot PNG and --perfetto Chrome trace JSON
    synth.py, synthdat.py     synthetic trace writers for tests and benchmarks
"""
