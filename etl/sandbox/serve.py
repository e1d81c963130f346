"""Run a sandbox in the foreground until Ctrl-C (the `etl sandbox` command)."""

import threading

from etl.errors import ConfigError

from .server import Sandbox

DEFAULT_PORT = 8025


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
