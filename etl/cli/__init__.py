"""The `etl` command: a thin click layer over the library; the group owns errors and exit codes.

Exit codes: 0 done, 1 failed, 2 usage or settings, 3 finished with rejected rows, 4 API key
refused, 5 another etl process holds the mirror, 130 interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from etl import __version__
from etl.errors import EtlError
from etl.redact import redact_text

INTERRUPTED = 130


class CommandFailed(click.ClickException):
    """An expected failure: one line on stderr and the library error's exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        # The last line of defence: whatever URL an error names, no password or token shows.
        click.echo(f"Error: {redact_text(self.format_message())}", err=True, file=file)


# Each command's module, imported only when the command runs (or help lists it): a nightly
# `etl sync` does not pay for loading the export and load code.
COMMAND_MODULES = {
    "sync": "sync_cmd",
    "status": "sync_cmd",
    "sandbox": "sandbox_cmd",
    "demo": "sandbox_cmd",
    "export": "export_cmd",
    "search": "export_cmd",
    "backup": "backup_cmd",
    "restore": "backup_cmd",
    "load": "load_cmd",
    "mapping": "load_cmd",
    "verify": "load_cmd",
    "migrate": "migrate_cmd",
}


# Commands that keep what they committed before Ctrl-C, and take up from there when run again.
RESUMABLE = frozenset(("sync", "backup", "load", "demo", "migrate"))


class EtlGroup(click.Group):
    """Turns library errors and Ctrl-C into CommandFailed, unless --debug asks for tracebacks."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        commands = importlib.import_module(f"etl.cli.{module}").COMMANDS
        return next(c for c in commands if c.name == cmd_name)

    def make_context(self, *args, **kwargs) -> click.Context:
        try:  # `etl --help` is written here, before any command runs
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            quiet_stdout()
            raise click.exceptions.Exit(0) from None

    def invoke(self, ctx: click.Context):
        debug = ctx.params.get("debug", False)
        try:
            return super().invoke(ctx)
        except EtlError as exc:
            if debug:
                raise
            raise CommandFailed(str(exc), exc.exit_code) from exc
        except BrokenPipeError:
            # The reader went away (`etl status | head`): what it wanted it has; end quietly.
            quiet_stdout()
            raise click.exceptions.Exit(0) from None
        except KeyboardInterrupt as exc:
            if debug:
                raise
            if ctx.invoked_subcommand in RESUMABLE:
                message = "everything committed so far is kept; run the command again to go on"
            else:
                message = "the command did not finish; run it again"
            raise CommandFailed(f"Interrupted: {message}.", INTERRUPTED) from exc


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit finds no closed pipe to complain about."""
    try:
        stdout = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (a test runner's)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, stdout)
    os.close(devnull)


@click.group(cls=EtlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smarticks-etl")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Back up, export and migrate a Smarticks helpdesk.

    \b
    Settings come from flags or the environment:
      SMARTICKS_URL, SMARTICKS_API_KEY, SMARTICKS_DB (default smarticks.db)

    \b
    Try it on the built-in sandbox:  etl demo
    Nightly backup:                  etl sync --quiet
    Add --debug to any command to see a traceback on failure.
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; `--debug` may stand anywhere on the command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args = ["--debug", *(a for a in args if a != "--debug")]
    try:
        cli.main(args=args, prog_name="etl")
    except Exception as exc:  # not an expected failure: still one line unless --debug
        if "--debug" in args:
            raise
        message = redact_text(f"{type(exc).__name__}: {exc}")
        click.echo(f"Error: {message} (run with --debug for details)", err=True)
        sys.exit(1)
