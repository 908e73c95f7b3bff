"""The `crossmod` command line: one click group, one module per subcommand family.

Owns: argument parsing, environment variables, progress output, exit codes
(0 = safe/ok, 1 = violation or hazard found, 2 = usage or input error).
May import everything else in crossmod; nothing imports it.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from crossmod.cli.audit import audit
from crossmod.cli.model import check, compare, list_cmd, replay_cmd
from crossmod.cli.necessity import necessity_cmd
from crossmod.cli.trace import trace


class _Group(click.Group):
    """Errors as one line on stderr and exit 2; a command's return value is the exit code."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"crossmod: error: {e.format_message()}", err=True)
            sys.exit(2)
        except click.exceptions.Abort:
            click.echo("crossmod: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(0)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crossmod")
def main() -> None:
    """Cross-CPU kernel text patching and IPI deferral laboratory.

    \b
    check     explore every interleaving of a patching/deferral protocol
    list      the protocol catalogue
    replay    re-run a counterexample from its printed token
    compare   IPIs and rendezvous per patch / key flip, protocol against protocol
    trace     which IPIs hit isolated CPUs in a real trace-cmd/ftrace trace
    audit     runtime-flippable static keys/calls on a kernel image's entry path
    """


main.add_command(check)
main.add_command(list_cmd)
main.add_command(replay_cmd)
main.add_command(compare)
main.add_command(trace)
main.add_command(audit)
main.add_command(necessity_cmd)
