"""Benchmarks for smarticks-etl against its own sandbox, with dlt's rest_api source as the peer.

    .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python tests/benchmarks/run.py

Every sandbox runs as its own process (`python -m etl sandbox --port 0 ...`), and so does every
measured job (`python -m etl sync|export|load ...`, `dlt_peer.py`): its wall time is taken from
start to exit and its peak memory is the peak RSS the kernel reports for it on exit (wait4).
The figures end in one table (scenario, figure, target, met or not), headed by the machine.

Options: --conversations 50000 --customers 20000 (defaults), --quick (5,000 / 2,000),
--skip-dlt, --out results.json (the figures as JSON too), --work DIR (keep the files there).
Run on demand only: this is never part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
API_KEY = "sandbox-key"
HEADERS = {"X-Smarticks-API-Key": API_KEY}
# `etl sync`'s defaults (see `etl sync --help`), passed explicitly so the bound below holds.
WORKERS = 4
# The latency scenario also runs with fewer requests in flight: on a small machine the bound
# 4 x 100 / 0.05 s = 8,000 records/s is above what the CPU can transform, so it measures the
# CPU; with fewer in flight it measures how much of the latency the pipeline hides.
LATENCY_WORKERS = (WORKERS, 2, 1)
PAGE_SIZE = 100
SYNC_LATENCY = 0.05
LOAD_LATENCY = 0.02
LOAD_WORKERS = (1, 8)
CHANGED_SHARE = 0.01
CEILING_SECONDS = 5.0
# Attachment files: the sandbox's seeded files, each cut to at most this many bytes, for
# these many conversations (about one file per two conversations); the second is 10x.
ATTACHMENT_BYTES = 256 * 1024
ATTACHMENT_CONVERSATIONS = (500, 5_000)
TIMEOUT = 3600.0
CONVERSATION_QUERY = {
    "status": "active,pending,closed,spam",
    "embed": "threads,tags",  # what `etl sync` asks for (etl/resources.py)
    "sortField": "updatedAt",
    "sortOrder": "asc",
}


# -- machine ----------------------------------------------------------------------------------


def machine() -> dict:
    """CPU model, cores, RAM, Python, OS, the date, and how busy the machine already was."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    try:
        import psutil

        ram = psutil.virtual_memory().total
    except ImportError:
        with contextlib.suppress(OSError, ValueError):
            ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    system = platform.platform(terse=True)
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} "
                system += f"{platform.release()})"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "etl"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if commit and dirty:
        commit += " + uncommitted changes in etl/"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "os": system,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "?",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gb']} GiB RAM, Python {m['python']}, "
        f"{m['os']}; {m['date']}, commit {m['commit']}, "
        f"load average {' '.join(str(x) for x in m['load_average'])} at start"
    )


# -- processes --------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured process."""

    name: str
    seconds: float
    peak_mb: float
    cpu_seconds: float
    returncode: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)

    def check(self, allowed: tuple[int, ...] = (0,)) -> Run:
        if self.returncode not in allowed:
            lines = [x for x in self.stderr.splitlines() if x.strip()]
            last = lines[-1] if lines else f"exit status {self.returncode}"
            raise RuntimeError(f"{self.name} exited {self.returncode}: {last[:160]}")
        return self


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTICKS_")}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return env


def measure(name: str, args: list[str], work: Path, timeout: float = TIMEOUT) -> Run:
    """Run `python ARGS` as its own process; wall time to exit and its peak RSS (wait4).

    Dirty pages other jobs left (dlt's database, a mirror) are flushed first: the kernel
    otherwise writes them back during this job's fsyncs, which added 0.1-0.15 s to an
    incremental sync of 0.65 s.
    """
    os.sync()
    out_path, err_path = work / f"{name}.out", work / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen([PYTHON, *args], stdout=out, stderr=err, cwd=work, env=child_env())
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        name=name,
        seconds=seconds,
        peak_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


class SandboxProcess:
    """`python -m etl sandbox --port 0 ...` in its own process; its URL once it answers."""

    def __init__(self, name: str, work: Path, conversations: int = 0, customers: int = 0, **opts):
        self.name, self.work = name, work
        self.args = ["-m", "etl", "sandbox", "--port", "0", "--api-key", API_KEY]
        if opts.get("empty"):
            self.args.append("--empty")
        else:
            self.args += ["--conversations", str(conversations), "--customers", str(customers)]
        if opts.get("latency"):
            self.args += ["--latency", str(opts["latency"])]
        if opts.get("attachment_files"):
            self.args += ["--attachment-files", str(opts["attachment_files"])]
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.startup_seconds = 0.0

    def __enter__(self) -> SandboxProcess:
        log = self.work / f"{self.name}.log"
        started = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [PYTHON, *self.args], stdout=out, stderr=subprocess.STDOUT, env=child_env()
            )
        try:
            self._wait_ready(log, started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, log: Path, started: float) -> None:
        while time.monotonic() - started < 900:
            if self.proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeError(f"sandbox exited {self.proc.returncode}: {' '.join(tail)}")
            if not self.url:
                found = re.search(r"sandbox at (http://\S+)", log.read_text(errors="replace"))
                self.url = found.group(1) if found else ""
            if self.url:
                with contextlib.suppress(requests.RequestException):
                    answer = requests.get(f"{self.url}/api/mailboxes", headers=HEADERS, timeout=5)
                    if answer.status_code == 200:
                        return
            time.sleep(0.2)
        raise RuntimeError("sandbox did not answer within 900 s")

    def cpu_seconds(self) -> float:
        """CPU time the sandbox process has used so far (NaN without psutil)."""
        try:
            import psutil

            times = psutil.Process(self.proc.pid).cpu_times()
            return times.user + times.system
        except (ImportError, OSError):
            return float("nan")

    def rss_mb(self) -> float:
        try:
            import psutil

            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except (ImportError, OSError):
            return 0.0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # `etl sandbox` stops cleanly on Ctrl-C
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc) -> None:
        self.stop()


# -- the jobs ---------------------------------------------------------------------------------


def compile_bytecode() -> None:
    """Compile etl's modules once, as a regular (not editable) install does.

    An editable install leaves compiling to the first import, and where
    PYTHONDONTWRITEBYTECODE is set (this VM sets it) every run compiled every module again:
    about 0.1 s a run, which the incremental sync paid and dlt, installed normally, did not.
    """
    import compileall

    import etl as package

    folder = Path(package.__file__).parent
    compiled = compileall.compile_dir(folder, quiet=1)
    say(f"compiled the bytecode of {folder} ({'done' if compiled else 'failed'})")


def etl(*args: str) -> list[str]:
    return ["-m", "etl", *args]


def sync_args(sandbox: SandboxProcess, db: Path, workers: int = WORKERS) -> list[str]:
    return etl(
        "sync",
        "--url",
        sandbox.url,
        "--api-key",
        API_KEY,
        "--db",
        str(db),
        "--workers",
        str(workers),
        "--page-size",
        str(PAGE_SIZE),
    )


def last_run(db: Path, work: Path) -> dict:
    """The newest row of etl_runs, through `etl status --json`."""
    answer = subprocess.run(
        [PYTHON, *etl("status", "--db", str(db), "--json", "--runs", "1")],
        capture_output=True,
        text=True,
        cwd=work,
        env=child_env(),
        check=True,
    )
    report = json.loads(answer.stdout)
    run = report["runs"][0]
    run["rows"] = report["rows"]
    run["files"] = report.get("files") or {}
    return run


@dataclass
class SyncFigures:
    run: Run
    conversations: int
    customers: int
    requests: int
    sandbox_cpu: float  # sandbox CPU seconds during the sync

    @property
    def conv_per_s(self) -> float:
        return self.conversations / self.run.seconds

    @property
    def records(self) -> int:
        """What fills list pages, and so what the latency bound counts."""
        return self.conversations + self.customers

    @property
    def records_per_s(self) -> float:
        return self.records / self.run.seconds


def timed_sync(
    name: str, sandbox: SandboxProcess, db: Path, work: Path, workers: int = WORKERS
) -> SyncFigures:
    before = sandbox.cpu_seconds()
    run = measure(name, sync_args(sandbox, db, workers), work).check()
    sandbox_cpu = sandbox.cpu_seconds() - before
    info = last_run(db, work)
    if info["status"] != "completed":
        raise RuntimeError(f"{name}: run status {info['status']}")
    return SyncFigures(
        run,
        info["counts"].get("conversations", 0),
        info["counts"].get("customers", 0),
        info["requests"],
        sandbox_cpu,
    )


def repeated_sync(
    name: str,
    sandbox: SandboxProcess,
    db: Path,
    work: Path,
    workers: int = WORKERS,
    repeat: int = 1,
) -> tuple[SyncFigures, list[float]]:
    """Full syncs into a fresh mirror `repeat` times: the median run, and every run's seconds.

    A shared VM's speed moves by 10-30% from one minute to the next; the median of a few runs
    says more about the code than any one of them. The mirror left is the last run's.
    """
    runs = []
    for attempt in range(repeat):
        remove_mirror(db)
        runs.append(timed_sync(run_name(name, attempt, repeat), sandbox, db, work, workers))
    return median_run(runs)


def repeated_incremental(
    sandbox: SandboxProcess, db: Path, work: Path, repeat: int = 1
) -> tuple[SyncFigures, list[float]]:
    """The incremental sync `repeat` times, each on a copy of the same changed mirror.

    The last run syncs the mirror itself, which later scenarios read.
    """
    runs = []
    for attempt in range(repeat):
        target = db
        if attempt < repeat - 1:
            target = db.with_name(f"incremental-{attempt + 1}.db")
            remove_mirror(target)
            for end in ("", "-wal"):
                if db.with_name(db.name + end).exists():
                    copy_at_rest(db.with_name(db.name + end), target.with_name(target.name + end))
        name = run_name("sync-incremental", attempt, repeat)
        runs.append(timed_sync(name, sandbox, target, work))
        if target != db:
            remove_mirror(target)
    return median_run(runs)


def run_name(name: str, attempt: int, repeat: int) -> str:
    """The name of one of `repeat` runs (its logs are kept under it): numbered if repeated."""
    return f"{name}-{attempt + 1}" if repeat > 1 else name


def copy_at_rest(source: Path, target: Path) -> None:
    """Copy a file and wait until the copy is on disk, like a mirror left from the night before.

    Otherwise the kernel is still writing the fresh copy's 550 MB back when the sync commits,
    and the sync's fsync waits for all of it: its last commit took 180-200 ms against 52 ms.
    """
    shutil.copyfile(source, target)
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())


def remove_mirror(db: Path) -> None:
    for path in (db, *(db.with_name(db.name + end) for end in ("-wal", "-shm", ".lock"))):
        path.unlink(missing_ok=True)


def median_run(runs: list[SyncFigures]) -> tuple[SyncFigures, list[float]]:
    """The run of median wall time (the faster one of an even count), and every run's seconds."""
    ordered = sorted(runs, key=lambda figures: figures.run.seconds)
    return ordered[(len(ordered) - 1) // 2], [figures.run.seconds for figures in runs]


def spread(seconds: list[float], digits: int = 1) -> str:
    """' (median of 3: 12.1-13.4 s)' for repeated runs; nothing for one."""
    if len(seconds) < 2:
        return ""
    low, high = min(seconds), max(seconds)
    return f" (median of {len(seconds)}: {low:.{digits}f}-{high:.{digits}f} s)"


def export_rows(run: Run) -> int:
    return sum(int(n) for n in re.findall(r"^\s+\w+\s+(\d+) rows$", run.stdout, re.M))


def timed_export(name: str, db: Path, fmt: str, work: Path) -> tuple[Run, int]:
    out = work / f"{name}.xlsx" if fmt == "xlsx" else work / name
    run = measure(name, etl("export", "--db", str(db), "--format", fmt, "--out", str(out)), work)
    run.check()
    rows = export_rows(run)
    if out.is_dir():
        shutil.rmtree(out)
    else:
        out.unlink(missing_ok=True)
    return run, rows


def warm(url: str, conversations: int, customers: int, clients: int = WORKERS) -> float:
    """Read every page of both lists once with `clients` threads; conversation pages/s.

    The sandbox renders a record's JSON once and then serves it from a cache, so the first pass
    is its cold ceiling; after it, measured runs all meet the same warm sandbox.
    """
    rate = read_all(url, "conversations", CONVERSATION_QUERY, pages(conversations), clients)
    customer_query = {"sortField": "updatedAt", "sortOrder": "asc"}
    read_all(url, "customers", customer_query, pages(customers), clients)
    return rate


def read_all(url: str, path: str, query: dict, count: int, clients: int) -> float:
    """GET pages 1..count of a list with `clients` threads; pages per second."""
    todo = iter(range(1, count + 1))
    lock = threading.Lock()
    failures: list[Exception] = []

    def client() -> None:
        with requests.Session() as session:
            session.headers.update(HEADERS)
            while not failures:
                with lock:
                    page = next(todo, None)
                if page is None:
                    return
                try:
                    answer = session.get(
                        f"{url}/api/{path}",
                        params={**query, "page": page, "pageSize": PAGE_SIZE},
                        timeout=120,
                    )
                    answer.raise_for_status()
                except requests.RequestException as exc:
                    failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"reading every {path} page failed: {failures[0]}")
    return count / (time.monotonic() - started)


def pages(records: int) -> int:
    return max(1, -(-records // PAGE_SIZE))


def ceiling(url: str, total: int, clients: int, seconds: float) -> float:
    """Pages of PAGE_SIZE conversations (threads, tags embedded) per second to plain clients."""
    count = pages(total)
    served = [0] * clients
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        session = requests.Session()
        session.headers.update(HEADERS)
        step = 0
        while time.monotonic() < deadline:
            page = 1 + (index + step * clients) * 37 % count  # spread over the whole list
            query = {**CONVERSATION_QUERY, "page": page, "pageSize": PAGE_SIZE}
            answer = session.get(f"{url}/api/conversations", params=query, timeout=60)
            answer.raise_for_status()
            len(answer.content)
            served[index] += 1
            step += 1
        session.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(served) / (time.monotonic() - started)


def change_conversations(url: str, db: Path, share: float) -> int:
    """Retag `share` of the mirrored conversations through the API (bumps their updatedAt)."""
    conn = sqlite3.connect(db)
    try:
        ids = [row[0] for row in conn.execute("SELECT id FROM conversations ORDER BY id")]
    finally:
        conn.close()
    chosen = random.Random(7).sample(ids, max(1, round(len(ids) * share)))
    with requests.Session() as session:
        session.headers.update(HEADERS)
        for cid in chosen:
            answer = session.put(
                f"{url}/api/conversations/{cid}/tags", json={"tags": ["bench-changed"]}, timeout=30
            )
            answer.raise_for_status()
    return len(chosen)


def timed_load(name: str, source: Path, count: int, workers: int, work: Path) -> tuple[Run, int]:
    """Load `count` conversations into a fresh empty sandbox with LOAD_LATENCY, fresh ledger."""
    ledger = work / f"{name}.db"
    with SandboxProcess(f"{name}-sandbox", work, empty=True, latency=LOAD_LATENCY) as target:
        args = etl(
            "load",
            "conversations",
            str(source),
            "--mapping",
            str(ROOT / "mappings" / "smarticks.toml"),
            "--url",
            target.url,
            "--api-key",
            API_KEY,
            "--db",
            str(ledger),
            "--limit",
            str(count),
            "--workers",
            str(workers),
            "--rejects",
            str(work / f"{name}.rejects.csv"),
        )
        run = measure(name, args, work).check(allowed=(0, 3))  # 3: some rows rejected
    found = re.search(r"^\s+created\s+(\d+)", run.stdout, re.M)
    if not found:
        raise RuntimeError(f"{name}: no 'created' count in its summary")
    return run, int(found.group(1))


def dlt_peer(sandbox: SandboxProcess, work: Path) -> tuple[Run, dict]:
    db, state = work / "dlt-peer.db", work / "dlt-pipelines"
    args = [
        str(Path(__file__).with_name("dlt_peer.py")),
        "--url",
        sandbox.url,
        "--api-key",
        API_KEY,
        "--db",
        str(db),
        "--work",
        str(state),
        "--page-size",
        str(PAGE_SIZE),
    ]
    run = measure("dlt-peer", args, work).check()
    lines = [x for x in run.stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError("dlt peer printed no report")
    return run, json.loads(lines[-1])


# -- the table --------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    figure: str
    target: str = ""
    result: str = ""  # met, not met, failed: ..., or empty for a plain figure


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.figures: dict[str, object] = {}

    def add(self, scenario: str, figure: str, target: str = "", met: bool | None = None) -> None:
        result = "" if met is None else ("met" if met else "NOT MET")
        self.rows.append(Row(scenario, figure, target, result))

    @contextlib.contextmanager
    def scenario(self, name: str) -> Iterator[None]:
        """Any failure inside becomes one 'failed' row; the benchmark goes on."""
        try:
            yield
        except Exception as exc:
            reason = " ".join(str(exc).split())[:150] or type(exc).__name__
            self.rows.append(Row(name, f"failed: {reason}", "", "FAILED"))
            print(f"  {name} failed: {reason}", flush=True)

    def render(self) -> str:
        heads = ("scenario", "figure", "target", "result")
        rows = sorted(self.rows, key=order)
        cells = [heads, *((r.scenario, r.figure, r.target, r.result) for r in rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)), line]
        for cell in cells[1:]:
            out.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        return "\n".join(out)


def order(row: Row) -> float:
    """Numbered scenarios in order, memory flatness after the exports, anything else first."""
    first = row.scenario.split()[0]
    if first.isdigit():
        return float(first)
    return 4.5 if first == "memory" else -1.0


def mb(value: float) -> str:
    return f"{value:,.0f} MB"


def pct(value: float) -> str:
    if value != value:  # NaN: not measured (psutil missing)
        return "?"
    return f"{value * 100:.0f}%" if value >= 0.1 else f"{value * 100:.1f}%"


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the run ----------------------------------------------------------------------------------


def attachments(work: Path, table: Table) -> None:
    """`etl sync --attachments` after a plain sync: files and MB/s, and memory at 10x the files.

    The plain sync first mirrors the attachments' rows; the measured run is then an
    incremental sync (a fraction of a second) and the downloads.
    """
    peaks = {}
    for count in ATTACHMENT_CONVERSATIONS:
        with table.scenario("7 attachments"):
            name = f"attachments-{count}"
            db = work / f"{name}.db"
            say(f"attachments: {count:,} conversations, files of up to {ATTACHMENT_BYTES:,} bytes")
            with SandboxProcess(
                f"{name}-sandbox", work, count, count * 2 // 5, attachment_files=ATTACHMENT_BYTES
            ) as sandbox:
                measure(f"{name}-sync", sync_args(sandbox, db), work).check()
                run = measure(f"{name}-files", [*sync_args(sandbox, db), "--attachments"], work)
                run.check()
            held = last_run(db, work)["files"]
            files, size = held.get("files", 0), held.get("bytes", 0)
            if not files:
                raise RuntimeError("no attachment files were stored")
            peaks[files] = run.peak_mb
            table.figures[name] = {**asdict_run(run), "files": files, "bytes": size}
            table.add(
                "7 attachments",
                f"{files:,} files, {size / 1e6:,.0f} MB in {run.seconds:.1f} s: "
                f"{files / run.seconds:,.0f} files/s, {size / 1e6 / run.seconds:,.1f} MB/s, "
                f"peak {mb(run.peak_mb)}",
            )
            shutil.rmtree(work / f"{name}-files", ignore_errors=True)
    if len(peaks) == 2:
        (few, low), (many, high) = sorted(peaks.items())
        table.add(
            "7 attachments",
            f"peak {mb(high)} at {many:,} files vs {mb(low)} at {few:,}: {high / low:.2f}x",
            "<= 1.5x",
            high / low <= 1.5,
        )


def benchmark(args, work: Path, table: Table) -> None:
    if args.attachments_only:
        attachments(work, table)
        return
    n, m = args.conversations, args.customers
    small_n, small_m = max(1, n // 10), max(1, m // 10)
    load_count = args.load
    figures = table.figures
    full: SyncFigures | None = None
    dlt_result: tuple[Run, dict] | None = None
    full_db, small_db = work / "full.db", work / "small.db"

    say(f"starting the sandbox with {n:,} conversations and {m:,} customers")
    with table.scenario("sandbox"), SandboxProcess("sandbox-full", work, n, m) as sandbox:
        figures["sandbox_startup_s"] = round(sandbox.startup_seconds, 1)
        say(f"sandbox ready at {sandbox.url} after {sandbox.startup_seconds:.0f} s")

        with table.scenario("0 sandbox ceiling"):
            cold = warm(sandbox.url, n, m)
            one = ceiling(sandbox.url, n, 1, CEILING_SECONDS)
            four = ceiling(sandbox.url, n, WORKERS, CEILING_SECONDS)
            figures["ceiling_pages_per_s"] = {
                f"cold_{WORKERS}": round(cold, 1),
                "1": round(one, 1),
                str(WORKERS): round(four, 1),
            }
            table.add(
                "0 sandbox ceiling",
                f"pages of {PAGE_SIZE} conv with threads: {one:,.0f}/s to 1 client, "
                f"{four:,.0f}/s to {WORKERS} (= {four * PAGE_SIZE:,.0f} conv/s); "
                f"first read {cold:,.0f}/s",
            )
            say(f"sandbox ceiling cold {cold:.1f}, warm {one:.1f} / {four:.1f} pages/s")

        with table.scenario("1 full sync"):
            say("full sync")
            full, full_runs = repeated_sync("sync-full", sandbox, full_db, work, repeat=args.repeat)
            figures["full_sync"] = repeated_figures(full, full_runs)
            if full.conversations != n or full.customers != m:
                raise RuntimeError(
                    f"mirrored {full.conversations} conversations, {full.customers} customers"
                )
            table.add(
                "1 full sync",
                f"{n:,} conv + {m:,} cust in {full.run.seconds:.1f} s{spread(full_runs)}: "
                f"{full.conv_per_s:,.0f} conv/s, {full.requests:,} requests, "
                f"peak {mb(full.run.peak_mb)}",
            )
            table.add(
                "1 full sync",
                f"CPU: sync {pct(full.run.cpu_seconds / full.run.seconds)} of a core, "
                f"sandbox {pct(full.sandbox_cpu / full.run.seconds)}; the sync asked "
                f"{full.requests / full.run.seconds:,.0f} requests/s of the sandbox's "
                f"{figures.get('ceiling_pages_per_s', {}).get(str(WORKERS), 0):,.0f} pages/s",
            )
            say(f"full sync {full.run.seconds:.1f} s")

        if args.skip_dlt:
            table.add("6 dlt peer", "skipped (--skip-dlt)")
        elif importlib.util.find_spec("dlt") is None:
            table.add("6 dlt peer", "not run: dlt is not installed (pip install -e '.[bench]')")
        else:
            with table.scenario("6 dlt peer"):
                say("dlt rest_api peer")
                dlt_result = dlt_peer(sandbox, work)

        with table.scenario("2 incremental"):
            if full is None:
                raise RuntimeError("needs the full sync")
            changed = change_conversations(sandbox.url, full_db, CHANGED_SHARE)
            say(f"changed {changed} conversations; incremental sync")
            inc, inc_runs = repeated_incremental(sandbox, full_db, work, args.repeat)
            figures["incremental_sync"] = repeated_figures(inc, inc_runs)
            share = inc.run.seconds / full.run.seconds
            table.add(
                "2 incremental",
                f"{changed:,} changed ({pct(CHANGED_SHARE)}): {inc.run.seconds:.2f} s"
                f"{spread(inc_runs, 2)} = "
                f"{pct(share)} of the full sync; {inc.conversations:,} conv read, "
                f"{inc.requests} requests",
                "<= 5% of full",
                share <= 0.05,
            )
        sandbox_rss = sandbox.rss_mb()
        figures["sandbox_rss_mb"] = round(sandbox_rss)

    with table.scenario("3 latency 50 ms"):
        say(f"sandbox with {SYNC_LATENCY * 1000:.0f} ms latency; full sync")
        with SandboxProcess("sandbox-latency", work, n, m, latency=SYNC_LATENCY) as sandbox:
            warm(sandbox.url, n, m, clients=16)  # like the first sandbox: served from cache
            for workers in LATENCY_WORKERS:
                db = work / f"latency-{workers}.db"
                # The CPU-bound run (the default workers) is repeated like scenario 1's;
                # with fewer workers the requests set the pace and the VM's speed matters less.
                repeat = args.repeat if workers == WORKERS else 1
                slow, slow_runs = repeated_sync(
                    f"sync-latency-{workers}", sandbox, db, work, workers, repeat
                )
                bound = workers * PAGE_SIZE / SYNC_LATENCY
                share = slow.records_per_s / bound
                figures[f"latency_sync_{workers}"] = {
                    **repeated_figures(slow, slow_runs),
                    "bound": bound,
                }
                table.add(
                    "3 latency 50 ms",
                    f"{workers} workers: {slow.records_per_s:,.0f} records/s "
                    f"({slow.conv_per_s:,.0f} conv/s), {slow.run.seconds:.1f} s"
                    f"{spread(slow_runs)}: {pct(share)} "
                    f"of bound {bound:,.0f}/s ({workers} x {PAGE_SIZE} / {SYNC_LATENCY} s); "
                    f"sync CPU {pct(slow.run.cpu_seconds / slow.run.seconds)}"
                    + without_latency(slow, full),
                    *latency_floor(workers, share),
                )
                if workers == WORKERS:
                    most = cpu_ceiling(slow)
                    figures[f"latency_sync_{workers}"]["cpu_ceiling_records_per_s"] = round(most)
                    table.add(
                        "3 latency 50 ms",
                        f"{workers} workers, CPU: {cpu_spent(slow)}; with every core busy "
                        f"all the time, at most {most:,.0f} records/s = {pct(most / bound)} "
                        "of the bound",
                    )

    exports: dict[str, Run] = {}
    for fmt in ("csv", "xlsx", "parquet"):
        with table.scenario(f"4 export {fmt}"):
            if not full_db.exists():
                raise RuntimeError("needs the full sync's mirror")
            say(f"export {fmt}")
            run, rows = timed_export(f"export-{fmt}", full_db, fmt, work)
            exports[fmt] = run
            figures[f"export_{fmt}"] = {**asdict_run(run), "rows": rows}
            table.add(
                f"4 export {fmt}",
                f"{rows:,} rows in {run.seconds:.1f} s: {rows / run.seconds:,.0f} rows/s, "
                f"peak {mb(run.peak_mb)}",
            )

    say(f"memory at {small_n:,} conversations: sandbox, sync, exports")
    with table.scenario("memory flat"):
        with SandboxProcess("sandbox-small", work, small_n, small_m) as sandbox:
            small = timed_sync("sync-small", sandbox, small_db, work)
        figures["small_sync"] = {**asdict_run(small.run), **sync_extra(small)}
        if full is not None:
            ratio = full.run.peak_mb / small.run.peak_mb
            table.add(
                "memory flat",
                f"sync peak {mb(full.run.peak_mb)} at {n:,} vs {mb(small.run.peak_mb)} at "
                f"{small_n:,} conv: {ratio:.2f}x",
                "<= 1.5x",
                ratio <= 1.5,
            )
        for fmt in ("csv", "xlsx", "parquet"):
            with table.scenario("memory flat"):
                run, _ = timed_export(f"export-small-{fmt}", small_db, fmt, work)
                figures[f"export_small_{fmt}"] = asdict_run(run)
                if fmt in exports:
                    ratio = exports[fmt].peak_mb / run.peak_mb
                    table.add(
                        "memory flat",
                        f"export {fmt} peak {mb(exports[fmt].peak_mb)} vs {mb(run.peak_mb)}: "
                        f"{ratio:.2f}x",
                        "<= 1.5x",
                        ratio <= 1.5,
                    )

    with table.scenario("5 load"):
        source = full_db if full_db.exists() else small_db
        if not source.exists():
            raise RuntimeError("needs a synced mirror to export from")
        say(f"load {load_count:,} conversations with {LOAD_WORKERS} workers")
        dump = work / "load-source"
        measure(
            "export-jsonl",
            etl("export", "--db", str(source), "--format", "jsonl", "--out", str(dump)),
            work,
        ).check()
        # Enough lines that --limit, not the end of the file, stops the load (some rows are
        # skipped: trash).
        lines = work / "load-conversations.jsonl"
        with open(dump / "conversations.jsonl", "rb") as src, open(lines, "wb") as dst:
            for number, line in enumerate(src):
                if number >= load_count * 3 // 2:
                    break
                dst.write(line)
        shutil.rmtree(dump)
        rates = {}
        for workers in LOAD_WORKERS:
            with table.scenario("5 load"):
                run, created = timed_load(f"load-{workers}", lines, load_count, workers, work)
                rates[workers] = created / run.seconds
                figures[f"load_{workers}"] = {**asdict_run(run), "created": created}
                table.add(
                    "5 load",
                    f"{workers} worker{'s' if workers > 1 else ''}, "
                    f"{LOAD_LATENCY * 1000:.0f} ms latency: "
                    f"{created:,} created in {run.seconds:.1f} s = {rates[workers]:,.1f} conv/s",
                )
        if len(rates) == 2:
            low, high = LOAD_WORKERS
            speedup = rates[high] / rates[low]
            table.add(
                "5 load",
                f"{high} workers vs {low}: {speedup:.1f}x faster",
                ">= 5x",
                speedup >= 5,
            )

    if dlt_result is not None and full is not None:
        with table.scenario("6 dlt peer"):
            run, report = dlt_result
            rows = report["rows"]
            loaded, customers = rows.get("conversations", 0), rows.get("customers", 0)
            threads = rows.get("conversations___embedded__threads", 0)
            figures["dlt_peer"] = {**asdict_run(run), **report}
            complete = loaded == n and customers == m
            table.add(
                "6 dlt peer",
                f"dlt {report['dlt_version']} rest_api -> sqlite: {run.seconds:.1f} s, "
                f"{loaded / run.seconds:,.0f} conv/s, peak {mb(run.peak_mb)}",
            )
            table.add(
                "6 dlt peer",
                f"dlt loaded {loaded:,}/{n:,} conv, {customers:,}/{m:,} cust, {threads:,} "
                f"threads: {'complete' if complete else 'INCOMPLETE'}",
            )
            ratio = (n / full.run.seconds) / (loaded / run.seconds) if loaded else 0.0
            table.add(
                "6 dlt peer",
                f"our full sync {ratio:.1f}x dlt's throughput "
                f"({full.conv_per_s:,.0f} vs {loaded / run.seconds:,.0f} conv/s)",
                ">= 3x dlt",
                ratio >= 3 and complete,
            )

    attachments(work, table)


def asdict_run(run: Run) -> dict:
    data = asdict(run)
    data.pop("stdout"), data.pop("stderr")
    data["seconds"] = round(run.seconds, 3)
    data["peak_mb"] = round(run.peak_mb, 1)
    data["cpu_seconds"] = round(run.cpu_seconds, 2)
    return data


def sync_extra(figures: SyncFigures) -> dict:
    return {
        "conversations": figures.conversations,
        "customers": figures.customers,
        "requests": figures.requests,
        "sandbox_cpu_seconds": None
        if figures.sandbox_cpu != figures.sandbox_cpu
        else round(figures.sandbox_cpu, 2),
        "conv_per_s": round(figures.conv_per_s, 1),
    }


def repeated_figures(figures: SyncFigures, seconds: list[float]) -> dict:
    """A repeated sync's JSON figures: the median run's, and every run's seconds."""
    return {
        **asdict_run(figures.run),
        **sync_extra(figures),
        "runs_seconds": [round(x, 2) for x in seconds],
    }


# Issue 20's floors: the share of the latency bound reached with one and with two workers. The
# default four workers are CPU-bound on 2 cores: reported beside the run's CPU ceiling instead.
LATENCY_FLOORS = {1: 0.80, 2: 0.65}


def latency_floor(workers: int, share: float) -> tuple:
    """The (floor text, met) of a latency row; nothing for a worker count without a floor."""
    floor = LATENCY_FLOORS.get(workers)
    if floor is None:
        return ()
    return (f">= {floor:.0%} of bound", share >= floor)


def cpu_ceiling(figures: SyncFigures) -> float:
    """The most records/s this machine's cores could move at this run's CPU cost per record.

    The sync and the sandbox share the cores. Were every core busy
    from the first moment to the last, the run could not take less than their CPU time
    divided by the cores: a ceiling that no overlap of requests can lift.
    """
    return figures.records / (_cpu_seconds(figures) / (os.cpu_count() or 1))


def _cpu_seconds(figures: SyncFigures) -> float:
    sandbox = figures.sandbox_cpu if figures.sandbox_cpu == figures.sandbox_cpu else 0.0
    return figures.run.cpu_seconds + sandbox


def cpu_spent(figures: SyncFigures) -> str:
    """'27.1 CPU-s on 2 cores (sync 26.4, sandbox 0.7) for 70,000 records'"""
    sandbox = f"{figures.sandbox_cpu:.1f}" if figures.sandbox_cpu == figures.sandbox_cpu else "?"
    return (
        f"{_cpu_seconds(figures):.1f} CPU-s on {os.cpu_count() or 1} cores (sync "
        f"{figures.run.cpu_seconds:.1f}, sandbox {sandbox}) for "
        f"{figures.records:,} records"
    )


def without_latency(slow: SyncFigures, full: SyncFigures | None) -> str:
    """The rate against scenario 1's, which no latency held back: how much of it was hidden."""
    if full is None:
        return ""
    return f"; {pct(slow.records_per_s / full.records_per_s)} of the rate without latency"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark smarticks-etl against its sandbox (dlt's rest_api as the peer)."
    )
    parser.add_argument("--conversations", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--load", type=int, help="conversations to load [5000; 500 with --quick]")
    parser.add_argument("--quick", action="store_true", help="5,000 / 2,000: a fast check")
    parser.add_argument("--skip-dlt", action="store_true", help="leave out the dlt peer")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the full, incremental and default-workers latency syncs; medians count [3]",
    )
    parser.add_argument(
        "--attachments-only", action="store_true", help="run only scenario 7 (attachment files)"
    )
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--work", type=Path, help="keep the files here [a temporary folder]")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.quick:
        args.conversations, args.customers = 5_000, 2_000
    if args.load is None:
        args.load = 500 if args.quick else 5_000

    info = machine()
    say(f"machine: {machine_line(info)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="etl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    say(f"work folder {work}")
    compile_bytecode()
    table = Table()
    started = time.monotonic()
    try:
        benchmark(args, work, table)
    except KeyboardInterrupt:
        table.rows.append(Row("(run)", "interrupted", "", "FAILED"))
    finally:
        total = time.monotonic() - started
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    command = "python tests/benchmarks/run.py " + " ".join(sys.argv[1:])
    print()
    print(f"smarticks-etl benchmarks: {command.strip()}  ({total / 60:.1f} min)")
    print(f"machine: {machine_line(info)}")
    print(table.render())
    if args.out:
        document = {
            "command": command.strip(),
            "machine": info,
            "minutes": round(total / 60, 1),
            "rows": [asdict(r) for r in table.rows],
            "figures": table.figures,
        }
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if any(r.result == "FAILED" for r in table.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
