"""Options shared by commands, and the small helpers that turn settings into library objects."""

from __future__ import annotations

import functools

import click

from etl.client import DEFAULT_DEADLINE, Client, RetryPolicy, insecure_url_warning
from etl.progress import retry_notices

DEFAULT_DB = "smarticks.db"
DEFAULT_MAX_WAIT = RetryPolicy.max_total_wait
DEFAULT_MAX_PAGES = Client.max_pages


def _remember(ctx: click.Context, param: click.Parameter, value):
    """Keep a client setting for `make_client`, so commands need not pass it along."""
    ctx.meta[f"etl.{param.name}"] = value
    return value


def connection_options(func):
    """--url / --api-key with their SMARTICKS_* variables (a flag wins over the variable), and
    the client's limits --max-wait / --max-pages / --timeout, which `make_client` reads
    itself."""

    @click.option(
        "--url", envvar="SMARTICKS_URL", metavar="URL", help="API base URL [env SMARTICKS_URL]"
    )
    @click.option(
        "--api-key",
        envvar="SMARTICKS_API_KEY",
        metavar="KEY",
        help="API key [env SMARTICKS_API_KEY]; prefer the variable: others can read a "
        "command line in the process list.",
    )
    @click.option(
        "--max-wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_MAX_WAIT,
        show_default=True,
        metavar="SECONDS",
        expose_value=False,
        callback=_remember,
        help="Patience with the server: a Retry-After (or retrying) longer than this fails.",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_DEADLINE,
        show_default=True,
        metavar="SECONDS",
        expose_value=False,
        callback=_remember,
        help="Longest one request may take in all, its answer or file included; one still "
        "arriving then is dropped and retried.",
    )
    @click.option(
        "--max-pages",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PAGES,
        show_default=True,
        metavar="N",
        expose_value=False,
        callback=_remember,
        help="Most pages read of a small list (tags, users, mailboxes, folders, fields).",
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
    warning every night. --max-wait and --max-pages come from the command's options.
    """
    context = click.get_current_context(silent=True)
    meta = context.meta if context is not None else {}
    kwargs.setdefault(
        "retry", RetryPolicy(max_total_wait=meta.get("etl.max_wait", DEFAULT_MAX_WAIT))
    )
    kwargs.setdefault("max_pages", meta.get("etl.max_pages", DEFAULT_MAX_PAGES))
    kwargs.setdefault("deadline", meta.get("etl.timeout", DEFAULT_DEADLINE))
    kwargs.setdefault("on_retry", retry_notices(quiet))
    client = Client(url or "", api_key or "", **kwargs)
    warning = insecure_url_warning(client.url)
    if warning and not quiet:
        click.echo(f"warning: {warning}", err=True)
    return client


def say(quiet: bool, message: str = "") -> None:
    if not quiet:
        click.echo(message)
