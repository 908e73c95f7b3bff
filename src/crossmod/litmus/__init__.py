"""`crossmod litmus`: herd7's AArch64 litmus tests run on crossmod's arm64 machine.

Owns: reading a test (parse.py, terms.py, isa.py -> syntax.py's `Litmus`), running each of
its threads into paths of events (interp.py, semantics.py, program.py), exploring every
execution on machine/aarch64 and giving the verdict herd7's kinds use (run.py), and the
catalogue helpers (catalogue.py: index files, kinds files, tiers). Imports: machine,
check (outcomes, verdict), report; nothing imports it but the CLI.

    from crossmod.litmus.parse import parse_file
    from crossmod.litmus.run import check
    check(parse_file("tests/litmus/cases/cm-SM+isb.litmus")).verdict   # 'Allowed'
"""
