"""Options shared by commands, and the small helpers that turn settings into library objects."""

from __future__ import annotations

import functools

import click

from etl.client import Client, insecure_url_warning

DEFAULT_DB = "smarticks.db"


def connection_options(func):
    """--url / --api-key with their SMARTICKS_* variables; a flag wins over the variable."""

    @click.option(
        "--url", envvar="SMARTICKS_URL", metavar="URL", help="API base URL [env SMARTICKS_URL]"
    )
    @click.option(
        "--api-key",
        envvar="SMARTICKS_API_KEY",
        metavar="KEY",
        help="API key [env SMARTICKS_API_KEY]",
    )
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def db_option(func):
    return click.option(
        "--db",
        envvar="SMARTICKS_DB",
        default=DEFAULT_DB,
        show_default=True,
        metavar="PATH",
        help="Mirror database [env SMARTICKS_DB]",
    )(func)


def quiet_option(func):
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress or summary; errors only (for cron)."
    )(func)


def attachments_option(func):
    return click.option(
        "--attachments",
        is_flag=True,
        help="Also download attachment files (each stored once, beside the mirror).",
    )(func)


def rebind_option(func):
    return click.option(
        "--rebind",
        is_flag=True,
        help="Accept a new address for the mirror's helpdesk (after it moved).",
    )(func)


def make_client(url: str | None, api_key: str | None, quiet: bool = False, **kwargs) -> Client:
    """A client for the given settings, warning on stderr if the key would travel unencrypted.

    `--quiet` is errors only, so a nightly cron job over plain http does not mail the same
    warning every night.
    """
    client = Client(url or "", api_key or "", **kwargs)
    warning = insecure_url_warning(client.url)
    if warning and not quiet:
        click.echo(f"warning: {warning}", err=True)
    return client


def say(quiet: bool, message: str = "") -> None:
    if not quiet:
        click.echo(message)
