"""Benchmark: records per second from a source helpdesk with 50 ms latency into a Smarticks
with 20 ms, for each source `etl migrate` reads.

    .venv/bin/python tests/benchmarks/migrate.py [--records 200] [--workers 1 8]
        [--sources zendesk helpscout freshdesk]

The servers are the emulations (etl.sandbox.*) on loopback, in this process; the latency,
not the CPU, sets the pace. Each run migrates into a fresh target and a fresh staging, with
the given --workers (source reads and target creates alike).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from etl import migrate, mirror
from etl.client import Client
from etl.sandbox import Sandbox
from etl.sandbox.freshdesk import FreshdeskSandbox
from etl.sandbox.helpscout import HelpScoutSandbox
from etl.sandbox.zendesk import ZendeskSandbox
from etl.sources.freshdesk import FreshdeskReader
from etl.sources.helpscout import HelpScoutReader
from etl.sources.zendesk import ZendeskReader
from etl.stage import SOURCES
from etl.staging import files_folder


def emulation(name: str, records: int):
    if name == "zendesk":
        return ZendeskSandbox(seed=1, tickets=records, latency=0.05)
    if name == "helpscout":
        return HelpScoutSandbox(seed=1, conversations=records, latency=0.05)
    return FreshdeskSandbox(seed=1, tickets=records, latency=0.05)


def reader(name: str, source):
    if name == "zendesk":
        return ZendeskReader(source.url, source.email, source.token)
    if name == "helpscout":
        return HelpScoutReader(source.url, source.client_id, source.client_secret)
    return FreshdeskReader(source.url, source.api_key)


def run(name: str, records: int, workers: int, work: Path) -> str:
    with emulation(name, records) as source, Sandbox(empty=True, latency=0.02) as target:
        db = work / f"{name}-{workers}.db"
        client = Client(target.url, target.api_key)
        conn = mirror.open_mirror(db).conn
        options = migrate.SendOptions(1, "admin@support.example.org", workers=workers)
        started = time.monotonic()
        report = migrate.migrate(
            SOURCES[name], reader(name, source), client, conn, files_folder(db), None, options
        )
        seconds = time.monotonic() - started
        conn.close()
    return (
        f"migrate {name}, {records} records, 50 ms source / 20 ms target, {workers} workers: "
        f"{seconds:.1f} s, {records / seconds:.1f} records/s ({report.created} created, "
        f"{report.stage.requests} source + {report.requests} target requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for name in args.sources:
            for workers in args.workers:
                print(run(name, args.records, workers, Path(work)), flush=True)


if __name__ == "__main__":
    main()
