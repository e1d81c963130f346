"""The `etl` command: a thin click layer over the library; `main()` owns errors and exit codes.

Exit codes: 0 done, 1 failed, 2 usage or settings, 3 finished with rejected rows, 4 API key
refused, 5 another etl process holds the mirror, 130 interrupted.
"""

from __future__ import annotations

import sys

import click

from etl import __version__
from etl.cli import export_cmd, load_cmd, sandbox_cmd, sync_cmd
from etl.errors import EtlError

INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="smarticks-etl")
def cli() -> None:
    """Back up, export and migrate a Smarticks helpdesk.

    \b
    Settings come from flags or the environment:
      SMARTICKS_URL, SMARTICKS_API_KEY, SMARTICKS_DB (default smarticks.db)

    \b
    Try it on the built-in sandbox:  etl demo
    Nightly backup:                  etl sync --quiet
    Add --debug to any command to see a traceback on failure.
    """


for module in (sync_cmd, sandbox_cmd, export_cmd, load_cmd):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: expected failures become one line on stderr and a meaningful exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        code = cli.main(args=args, prog_name="etl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(INTERRUPTED)
    except KeyboardInterrupt:
        if debug:
            raise
        click.echo(
            "Interrupted: everything committed so far is kept; run the command again to go on.",
            err=True,
        )
        sys.exit(INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EtlError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an unexpected failure still gets one line unless --debug
        if debug:
            raise
        click.echo(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
