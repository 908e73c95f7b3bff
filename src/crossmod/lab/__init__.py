"""crossmod.lab: the cover letter's measurement on a real kernel, in one command.

Layout (imports point down; of crossmod only `crossmod.trace` is imported, for the report):

    tools.py       host tools and the Debian package each comes from (one-line errors)
    record.py      kernel capabilities -> the trace-cmd command line (pure), live recording
    guest.py       the guest's workload plan (seed -> phases) and its configuration file
    initramfs.py   the guest's root file system, built from guest/ and written as newc cpio
    qemu.py        the QEMU command line and kernel command line (pure), booting the guest
    results.py     what the guest shipped back: /proc/interrupts, isolated CPUs, skips
    guest/         the guest's own sources: init, load.sh, spin.c, bpfload.c
"""
