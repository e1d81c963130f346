"""The peer for the benchmark: dlt's declarative `rest_api` source syncing the same sandbox.

    python tests/benchmarks/dlt_peer.py --url URL --api-key KEY --db peer.db --work DIR

Conversations (every status, threads and tags embedded, as `etl sync` asks for them) and
customers are read in `updatedAt` order with a page-number paginator and an incremental cursor
on `updatedAt` sent as `updatedSince`, and merged on `id` into SQLite through dlt's
`sqlalchemy` destination (dataset `main`, so everything lands in the one file). dlt turns the
embedded thread lists into child tables by itself. At exit it prints one JSON line with the
row counts it finds in the database, so the caller can check that every record arrived.

dlt is a benchmark-only extra (`pip install -e '.[bench]'`), never a runtime dependency.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time

STATUSES = "active,pending,closed,spam"
EPOCH = "2000-01-01T00:00:00Z"  # before any record: the first run reads everything


def resource(name: str, path: str, page_size: int, extra: dict) -> dict:
    """One list endpoint: updatedAt ascending, page numbers, cursor sent as updatedSince."""
    return {
        "name": name,
        "primary_key": "id",
        "write_disposition": "merge",
        "endpoint": {
            "path": path,
            "params": {
                **extra,
                "sortField": "updatedAt",
                "sortOrder": "asc",
                "pageSize": page_size,
                "updatedSince": {
                    "type": "incremental",
                    "cursor_path": "updatedAt",
                    "initial_value": EPOCH,
                },
            },
            "paginator": {
                "type": "page_number",
                "page_param": "page",
                "base_page": 1,
                "total_path": "page.totalPages",
            },
            "data_selector": f"_embedded.{name}",
        },
    }


def source_config(url: str, api_key: str, page_size: int) -> dict:
    conversations = {"status": STATUSES, "embed": "threads,tags"}
    return {
        "client": {
            "base_url": url.rstrip("/") + "/",
            "auth": {
                "type": "api_key",
                "name": "X-Smarticks-API-Key",
                "api_key": api_key,
                "location": "header",
            },
        },
        "resources": [
            resource("customers", "api/customers", page_size, {}),
            resource("conversations", "api/conversations", page_size, conversations),
        ],
    }


def count_rows(db: str) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_dlt%'"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--db", required=True, help="SQLite file to create")
    parser.add_argument("--work", required=True, help="dlt's pipelines directory")
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()

    # No telemetry (this machine reaches no network) and dlt's state kept in --work only.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # SQLite takes one writer at a time: dlt's parallel load jobs into the main and staging
    # files failed now and then with "database is locked", leaving the package half loaded.
    os.environ.setdefault("LOAD__WORKERS", "1")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    started = time.monotonic()
    pipeline = dlt.pipeline(
        pipeline_name="smarticks_peer",
        pipelines_dir=args.work,
        destination=dlt.destinations.sqlalchemy(credentials=f"sqlite:///{args.db}"),
        dataset_name="main",
    )
    source = rest_api_source(source_config(args.url, args.api_key, args.page_size))
    info = pipeline.run(source)
    seconds = time.monotonic() - started
    rows = count_rows(args.db)
    report = {
        "dlt_version": dlt.__version__,
        "pipeline_seconds": round(seconds, 2),
        "rows": rows,
        "failed_jobs": info.has_failed_jobs,
    }
    print(json.dumps(report), flush=True)
    return 1 if info.has_failed_jobs else 0


if __name__ == "__main__":
    sys.exit(main())
