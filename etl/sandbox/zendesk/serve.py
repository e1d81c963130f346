"""Run the Zendesk emulation in the foreground until Ctrl-C (`etl sandbox --flavor zendesk`)."""

import threading

from etl.errors import ConfigError

from .server import ZendeskSandbox


def serve_zendesk(host: str, port: int, seed: int, tickets: int, **faults) -> int:
    """Start a ZendeskSandbox, print how to migrate from it, serve until Ctrl-C."""
    try:
        sandbox = ZendeskSandbox(seed=seed, tickets=tickets, host=host, port=port, **faults)
        sandbox.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    store = sandbox.store
    live = sum(1 for t in store.tickets.values() if t.status != "deleted")
    print(f"Zendesk sandbox at {sandbox.url}  (files at {sandbox.files_url})", flush=True)
    print(
        f"  {len(store.tickets)} tickets ({live} live), {len(store.users)} users, seed {seed}",
        flush=True,
    )
    print(f"  export ZENDESK_EMAIL={sandbox.email} ZENDESK_TOKEN={sandbox.token}", flush=True)
    print(f"  etl migrate zendesk --source-url {sandbox.url} --mailbox 1 \\", flush=True)
    print("      --fallback-user admin@support.example.org --dry-run", flush=True)
    print("  Press Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nSandbox stopped.", flush=True)
    finally:
        sandbox.stop()
    return 0
