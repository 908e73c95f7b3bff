"""`crossmod audit`: runtime-flippable static keys and static calls on a kernel image's entry
path, read from the shipped binary (vmlinux, bzImage/vmlinuz, or a .ko).

Owns: flags, output format and exit codes for the auditor; the work is crossmod.audit's.
Exit codes: 0 no failing hazard, 1 hazards remain after --allow, 2 bad input.
"""

from __future__ import annotations

import json

import click

from crossmod.audit import ImageFormatError, Options, audit_image
from crossmod.audit.rules import SENSITIVE


def _read_allow_file(path: str) -> set[str]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ImageFormatError(exc.strerror or "cannot read", path) from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        lineno = raw.count(b"\n", 0, exc.start) + 1
        raise ImageFormatError(f"--allow-file line {lineno}: byte 0x{raw[exc.start]:02x} is not "
                               "UTF-8 (a key list is plain text)", path) from None
    keys: set[str] = set()
    for line in lines:
        key = line.split("#", 1)[0].strip()
        if key:
            keys.add(key)
    return keys


@click.command()
@click.argument("image", metavar="IMAGE")
@click.option("--symbols", "symbols_path", metavar="FILE",
              help="System.map or kallsyms dump (/proc/kallsyms, KASLR is undone); default: "
                   "the ELF .symtab, else the image's embedded kallsyms.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--allow", "allow", multiple=True, metavar="KEY",
              help="Accept hazards on this key (static key symbol, __SCK__name or name). "
                   "Repeatable.")
@click.option("--allow-file", "allow_file", metavar="FILE",
              help="File of keys to accept, one per line, '#' starts a comment.")
@click.option("--region", "regions", multiple=True, type=click.Choice(SENSITIVE),
              help="Count hazards only in this region (repeatable; default: all three). "
                   "`--region entry` is the v8 deferral series' check.")
@click.option("--tracepoints", "tracepoints_fail", is_flag=True,
              help="Let tracepoint keys/calls (__tracepoint_*, __SCK__tp_func_*) fail the "
                   "audit too; by default they are listed but, as in objtool, not counted.")
@click.pass_context
def audit(ctx: click.Context, image: str, symbols_path: str | None, as_json: bool,
          allow: tuple[str, ...], allow_file: str | None, regions: tuple[str, ...],
          tracepoints_fail: bool) -> None:
    """Audit IMAGE for static branches/calls on the entry path whose keys stay writable.

    IMAGE is a vmlinux ELF (with or without symbols), a bzImage/vmlinuz (gzip, xz, lzma,
    bzip2, lz4 or zstd payload) or a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz).
    A site is a hazard when it lies in .entry.text, .noinstr.text or a separate .cpuidle.text
    and its key is outside __start_ro_after_init..__end_ro_after_init.

    \b
    Exit status: 0 no hazard left, 1 hazards left after --allow, 2 bad input.
    """
    try:
        keys = set(allow) | (_read_allow_file(allow_file) if allow_file else set())
        checked = tuple(r for r in SENSITIVE if r in regions) if regions else SENSITIVE
        opts = Options(symbols_path, frozenset(keys), tracepoints_fail, checked)
        report = audit_image(image, opts)
    except ImageFormatError as exc:
        click.echo(f"crossmod audit: error: {exc}", err=True)
        ctx.exit(2)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.render())
    ctx.exit(report.exit_code)
