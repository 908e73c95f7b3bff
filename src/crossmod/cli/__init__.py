"""The `crossmod` command line: one click group, one module per subcommand family.

Owns: argument parsing, environment variables, progress output, exit codes
(0 = safe/ok, 1 = violation or hazard found, 2 = usage or input error).
May import everything else in crossmod; nothing imports it.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import click

# name -> (module, function, one line for the top-level help), in the order a newcomer
# meets them. A command's module is imported only when it runs: `crossmod trace` does not
# pay for the model checker's and the auditor's imports (half the memory of a small run).
COMMANDS = {
    "check": ("crossmod.cli.model", "check",
              "explore every interleaving of a patching/deferral protocol"),
    "list": ("crossmod.cli.model", "list_cmd", "the protocol catalogue"),
    "replay": ("crossmod.cli.model", "replay_cmd",
               "re-run a counterexample from its printed token"),
    "compare": ("crossmod.cli.model", "compare",
                "IPIs and rendezvous per patch or key flip, side by side"),
    "necessity": ("crossmod.cli.necessity", "necessity_cmd",
                  "which sync / barrier / ordering steps a protocol needs"),
    "trace": ("crossmod.cli.trace", "trace",
              "which IPIs hit isolated CPUs in a real trace-cmd/ftrace trace"),
    "simulate": ("crossmod.cli.simulate", "simulate_cmd",
                 "a whole machine for hours under each IPI-deferral policy"),
    "record": ("crossmod.cli.lab", "record_cmd",
               "trace-cmd around a command: IPIs at isolated CPUs, live (root)"),
    "lab": ("crossmod.cli.lab", "lab",
            "the measurement in a QEMU guest: Debian kernel, load phases"),
    "audit": ("crossmod.cli.audit", "audit",
              "runtime-flippable static keys/calls on an image's entry path"),
    "litmus": ("crossmod.cli.litmus", "litmus",
               "herd7 AArch64 litmus tests on the arm64 instruction-fetch machine"),
}


class _Group(click.Group):
    """Errors as one line on stderr and exit 2; a command's return value is the exit code;
    commands loaded when used (`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        return getattr(importlib.import_module(spec[0]), spec[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec[2]) for name, spec in COMMANDS.items()])

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
            sys.stdout.flush()  # a full disk must fail here, not silently at exit
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else e.format_message())
            sys.exit(0)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"crossmod: error: {e.format_message()}", err=True)
            sys.exit(2)
        except click.exceptions.Abort:
            click.echo("crossmod: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(0)
        except OSError as e:
            if e.filename is not None:
                raise  # a command's own file: it reports those itself
            _silence_stdout()
            click.echo(f"crossmod: error: cannot write standard output: "
                       f"{e.strerror or e}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush of what could not be
    written does not fail again (Python's documented way out of a broken pipe)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file descriptor (a test runner's stream): nothing to flush


@click.group(cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="crossmod")
def main() -> None:
    """Cross-CPU kernel text patching and IPI deferral laboratory.

    Each command has --help; exit status 0 = safe / ok, 1 = violation or hazard found,
    2 = bad input or usage.
    """

