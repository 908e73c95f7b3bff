"""The `crossmod` command line: one click group, one module per subcommand family.

Owns: argument parsing, environment variables, progress output, exit codes
(0 = safe/ok, 1 = violation or hazard found, 2 = usage or input error).
May import everything else in crossmod; nothing imports it.
"""

from __future__ import annotations

import click

from crossmod.cli.audit import audit
from crossmod.cli.model import check, list_cmd, necessity, replay
from crossmod.cli.trace import trace


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crossmod")
def main() -> None:
    """Cross-CPU kernel text patching and IPI deferral laboratory.

    \b
    check     explore every interleaving of a patching/deferral protocol
    list      the protocol catalogue
    replay    re-run a counterexample from its printed token
    trace     which IPIs hit isolated CPUs in a real trace-cmd/ftrace trace
    audit     runtime-flippable static keys/calls on a kernel image's entry path
    """


main.add_command(check)
main.add_command(list_cmd)
main.add_command(replay)
main.add_command(necessity)
main.add_command(trace)
main.add_command(audit)
