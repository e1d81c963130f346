"""Run a source emulation in the foreground until Ctrl-C (`etl sandbox --flavor NAME`)."""

import threading

from etl.errors import ConfigError

FALLBACK = "admin@support.example.org"


def serve_source(flavor: str, host: str, port: int, seed: int, count: int, **faults) -> int:
    """Start the emulation, print how to migrate from it, serve until Ctrl-C."""
    try:
        sandbox = _make(flavor, host, port, seed, count, faults).start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    name = {"zendesk": "Zendesk", "helpscout": "Help Scout", "freshdesk": "Freshdesk"}[flavor]
    print(f"{name} sandbox at {sandbox.url}  (files at {sandbox.files_url}), seed {seed}")
    if flavor == "zendesk":
        print(f"  export ZENDESK_EMAIL={sandbox.email} ZENDESK_TOKEN={sandbox.token}")
    elif flavor == "freshdesk":
        print(f"  export FRESHDESK_API_KEY={sandbox.api_key}")
    else:
        print(
            f"  export HELPSCOUT_CLIENT_ID={sandbox.client_id} "
            f"HELPSCOUT_CLIENT_SECRET={sandbox.client_secret}"
        )
    print(f"  etl migrate {flavor} --source-url {sandbox.url} --mailbox 1 \\")
    print(f"      --fallback-user {FALLBACK} --dry-run", flush=True)
    print("  Press Ctrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nSandbox stopped.", flush=True)
    finally:
        sandbox.stop()
    return 0


def _make(flavor: str, host: str, port: int, seed: int, count: int, faults: dict):
    if flavor == "zendesk":
        from etl.sandbox.zendesk import ZendeskSandbox

        return ZendeskSandbox(seed=seed, tickets=count, host=host, port=port, **faults)
    if flavor == "freshdesk":
        from etl.sandbox.freshdesk import FreshdeskSandbox

        return FreshdeskSandbox(seed=seed, tickets=count, host=host, port=port, **faults)
    from etl.sandbox.helpscout import HelpScoutSandbox

    return HelpScoutSandbox(seed=seed, conversations=count, host=host, port=port, **faults)
