"""Benchmark: tickets per second from a Zendesk with 50 ms latency into a Smarticks with 20 ms.

    .venv/bin/python tests/benchmarks/migrate_zendesk.py [--tickets 200] [--workers 1 8]

Both servers are the emulations (etl.sandbox.zendesk, etl.sandbox) on loopback, in this
process; the latency, not the CPU, sets the pace. Each run migrates into a fresh target and a
fresh staging, with the given --workers (source reads and target creates alike).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from etl import migrate, mirror
from etl.client import Client
from etl.sandbox import Sandbox
from etl.sandbox.zendesk import ZendeskSandbox
from etl.sources.zendesk import ZendeskReader
from etl.staging import files_folder


def run(tickets: int, workers: int, work: Path) -> str:
    with (
        ZendeskSandbox(seed=1, tickets=tickets, latency=0.05) as source,
        Sandbox(empty=True, latency=0.02) as target,
    ):
        db = work / f"migration-{workers}.db"
        reader = ZendeskReader(source.url, source.email, source.token)
        client = Client(target.url, target.api_key)
        conn = mirror.open_mirror(db).conn
        options = migrate.SendOptions(1, "admin@support.example.org", workers=workers)
        started = time.monotonic()
        report = migrate.migrate_zendesk(
            reader, client, conn, files_folder(db), "zendesk-api", options
        )
        seconds = time.monotonic() - started
        conn.close()
    return (
        f"migrate zendesk, {tickets} tickets, 50 ms source / 20 ms target, {workers} workers: "
        f"{seconds:.1f} s, {tickets / seconds:.1f} tickets/s ({report.created} created, "
        f"{report.stage.requests} source + {report.requests} target requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for workers in args.workers:
            print(run(args.tickets, workers, Path(work)), flush=True)


if __name__ == "__main__":
    main()
