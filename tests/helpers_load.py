"""Running loads in tests: the CLI against a sandbox, and the figures of its summary."""

from __future__ import annotations

import re

from click.testing import CliRunner

from etl.cli import cli

# The generic mapping's columns a test CSV of messages fills, one row per message.
GENERIC_HEADER = [
    "conversation_id",
    "subject",
    "customer_email",
    "status",
    "message_type",
    "message_created_at",
    "body",
    "attachments",
    "author_email",
]


def run(sandbox, *args, db):
    """Invoke the CLI against a sandbox; the key and URL come from the environment."""
    env = {
        "SMARTICKS_URL": sandbox.url,
        "SMARTICKS_API_KEY": sandbox.api_key,
        "SMARTICKS_DB": str(db),
    }
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def figure(output: str, label: str) -> int:
    """The number on a summary line (`  created      12`)."""
    found = re.search(rf"^\s+{re.escape(label)}\s+(\d+)", output, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{output}"
    return int(found.group(1))
