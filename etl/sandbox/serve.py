"""Run a sandbox in the foreground until Ctrl-C (the `etl sandbox` command)."""

import ipaddress
import sys
import threading

from etl.errors import ConfigError

from .server import DEFAULT_API_KEY, Sandbox

DEFAULT_PORT = 8025


def exposure_warning(host: str, api_key: str) -> str | None:
    """A warning when other machines could reach a sandbox whose key everyone knows."""
    if api_key != DEFAULT_API_KEY or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name, or "" for every interface: it may be reachable
    return (
        f"warning: listening on {host or 'every interface'} with the well-known key "
        f"{api_key!r}: whoever reaches the port can read and change its data "
        "(pass --api-key with a key of your own)"
    )


def serve_forever(**options) -> int:
    """Start a Sandbox with the given options, print how to use it, serve until Ctrl-C.

    Options are Sandbox's keyword arguments (port defaults to 8025 here). Returns 0.
    """
    options.setdefault("port", DEFAULT_PORT)
    options = {k: v for k, v in options.items() if v is not None or k == "customers"}
    try:
        sandbox = Sandbox(**options).start()
    except OSError as exc:
        where = f"{options.get('host', '127.0.0.1')}:{options['port']}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    warning = exposure_warning(sandbox.host, sandbox.api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    store = sandbox.store
    print(f"Smarticks sandbox at {sandbox.url}  API key: {sandbox.api_key}", flush=True)
    print(
        f"  {store.count('conversations')} conversations, {store.count('customers')} customers,"
        f" {store.count('mailboxes')} mailboxes, {store.count('users')} users,"
        f" seed {sandbox.seed}",
        flush=True,
    )
    print(f"  export SMARTICKS_URL={sandbox.url} SMARTICKS_API_KEY={sandbox.api_key}", flush=True)
    print("  Press Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nSandbox stopped.", flush=True)
    finally:
        sandbox.stop()
    return 0
