"""Integration tests of `etl sync` against the sandbox, over real HTTP on loopback.

Each numbered test proves one property of the sync issue and fails when it is broken.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from etl import mirror, schema
from etl.cli import COMMAND_MODULES, cli
from etl.cli.common import make_client
from etl.client import Client, RetryPolicy
from etl.errors import ApiError
from etl.sync import SyncOptions, sync
from tests.hostile import Answer, forward, serve

DATA_TABLES = [
    t.name for t in schema.TABLES if not t.name.startswith("etl_") and t.name != "timelogs"
]


def do_sync(sandbox, path, **options):
    client = Client(sandbox.url, sandbox.api_key)
    db = mirror.open_mirror(path)
    try:
        return sync(client, db.conn, SyncOptions(**options))
    finally:
        db.conn.close()


def mirrored(path, sql, params=()):
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(path):
    """Every data table's rows, for comparing two mirrors."""
    conn = sqlite3.connect(path)
    try:
        return {
            t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1, 2').fetchall() for t in DATA_TABLES
        }
    finally:
        conn.close()


def source_state(sandbox):
    """id -> updatedAt of every conversation at the source, whatever its status."""
    return {
        cid: sandbox.store.get_conversation(cid)["updatedAt"]
        for cid in sandbox.store.conversation_ids()
    }


def mirror_state(path):
    return dict(mirrored(path, "SELECT id, updated_at FROM conversations WHERE deleted_at IS NULL"))


# 1. No status is skipped -------------------------------------------------------------------


def test_1_every_status_is_mirrored_not_only_active(sandbox, tmp_path):
    path = tmp_path / "m.db"
    do_sync(sandbox, path)
    statuses = dict(mirrored(path, "SELECT status, count(*) FROM conversations GROUP BY 1"))
    assert {"active", "pending", "closed", "spam"} <= set(statuses)
    assert mirror_state(path) == source_state(sandbox)
    threads = sum(
        c["threadsCount"] for c in map(sandbox.store.get_conversation, mirror_state(path))
    )
    assert mirrored(path, "SELECT count(*) FROM threads")[0][0] == threads


# 2. Same-second records are not missed; reruns duplicate nothing ----------------------------


def test_2_records_sharing_the_cursor_second_are_not_missed(sandbox, tmp_path):
    path = tmp_path / "m.db"
    frozen = int(time.time())
    sandbox.store.clock = lambda: frozen
    ids = sorted(sandbox.store.conversation_ids())
    sandbox.store.touch_conversation(ids[0])
    do_sync(sandbox, path)
    cursor = mirrored(path, "SELECT value FROM etl_cursors WHERE resource='conversations'")[0][0]
    assert cursor == sandbox.store.get_conversation(ids[0])["updatedAt"]
    # Another change lands in the very same second, after the first sync read that second.
    sandbox.store.update_conversation(ids[1], subject="changed in the cursor's second")
    do_sync(sandbox, path)
    subject = mirrored(path, "SELECT subject FROM conversations WHERE id=?", (ids[1],))[0][0]
    assert subject == "changed in the cursor's second"


def test_2_a_rerun_duplicates_nothing_and_changes_nothing(sandbox, tmp_path):
    path = tmp_path / "m.db"
    do_sync(sandbox, path)
    before = snapshot(path)
    result = do_sync(sandbox, path)
    assert snapshot(path) == before
    # The rerun only re-reads the cursor's second, not the whole list.
    assert result.counts["conversations"] < len(sandbox.store.conversation_ids())


# 3. Records changing while pages are read do not make others slip ----------------------------


@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("seconds", ["crowded", "distinct"])
def test_3_changes_during_paging_do_not_make_unchanged_records_slip(
    sandbox, tmp_path, workers, seconds
):
    path = tmp_path / "m.db"
    if seconds == "distinct":
        # One second per conversation, so a record pushed past a page boundary is in a
        # second of its own (the seed crowds many into a few seconds).
        clock = iter(range(1_600_000_000, 1_700_000_000))
        sandbox.store.clock = lambda: next(clock)
        for cid in sorted(sandbox.store.conversation_ids()):
            sandbox.store.touch_conversation(cid)
        sandbox.store.clock = lambda: int(time.time())
    changed: set[int] = set()
    deleted: set[int] = set()
    state = {"calls": 0}
    rng = random.Random(workers)

    def churn(method, path_, query):
        if method != "GET" or not path_.endswith("/conversations"):
            return
        state["calls"] += 1
        if state["calls"] < 3:
            return
        # Move conversations to the end of the updatedAt order and delete one now and then:
        # both shift page numbers under a naive pager. The oldest unchanged one goes first
        # (it is always already read), plus one at random, read or not.
        live = sorted(
            (c for c in sandbox.store.conversation_ids() if c not in changed),
            key=lambda c: (sandbox.store.get_conversation(c)["updatedAt"], c),
        )
        for cid in {live[0], rng.choice(live)} if live else ():
            sandbox.store.touch_conversation(cid)
            changed.add(cid)
        rest = [c for c in live if c not in changed]
        if state["calls"] % 3 == 0 and rest:
            victim = rng.choice(rest)
            sandbox.store.delete_conversation(victim)
            deleted.add(victim)

    before = set(sandbox.store.conversation_ids())
    sandbox.on_request = churn
    do_sync(sandbox, path, page_size=10, workers=workers)
    sandbox.on_request = None
    assert state["calls"] > 5
    untouched = before - changed - deleted
    assert untouched <= set(mirror_state(path)), "unchanged conversations slipped between pages"
    # Whatever changed during the run is caught at the latest by the next one.
    do_sync(sandbox, path, page_size=10, workers=workers)
    source, after = source_state(sandbox), mirror_state(path)
    assert {k: after.get(k) for k in source} == source


# 4. Interrupting and rerunning gives the same mirror ----------------------------------------


def reference_mirror(sandbox_factory, tmp_path, **kwargs):
    sandbox = sandbox_factory(seed=11, conversations=150, **kwargs)
    path = tmp_path / "reference.db"
    do_sync(sandbox, path, page_size=10)
    return snapshot(path)


def cursor_is_safe(path, sandbox):
    """Every source conversation stamped before the cursor is in the mirror."""
    rows = mirrored(path, "SELECT value FROM etl_cursors WHERE resource='conversations'")
    if not rows:
        return True
    cursor = rows[0][0]
    present = set(mirror_state(path))
    return all(cid in present for cid, ts in source_state(sandbox).items() if ts < cursor)


def test_4_lost_network_mid_sync_then_rerun_gives_the_same_mirror(sandbox_factory, tmp_path):
    expected = reference_mirror(sandbox_factory, tmp_path)
    sandbox = sandbox_factory(seed=11, conversations=150)
    path = tmp_path / "m.db"
    calls = {"n": 0}

    def cut(method, path_, query):
        if path_.endswith("/conversations"):
            calls["n"] += 1
            if calls["n"] == 12:  # after the planning requests and a few pages
                sandbox.drop_rate = 1.0

    sandbox.on_request = cut
    client = Client(sandbox.url, sandbox.api_key, retry=RetryPolicy(attempts=2, base_delay=0.01))
    db = mirror.open_mirror(path)
    with pytest.raises(ApiError):
        sync(client, db.conn, SyncOptions(page_size=10))
    run = mirror.recent_runs(db.conn, 1)[0]
    db.conn.close()
    assert run["status"] == "failed" and "connection" in run["errors"]
    partial = mirrored(path, "SELECT count(*) FROM conversations")[0][0]
    assert 0 < partial < 150
    assert cursor_is_safe(path, sandbox)
    sandbox.on_request = None
    sandbox.drop_rate = 0.0
    do_sync(sandbox, path, page_size=10)
    assert snapshot(path) == expected


def run_cli_process(args, env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", "etl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_rows(path, minimum, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if mirrored(path, "SELECT count(*) FROM conversations")[0][0] >= minimum:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError("the sync never got going")


def wait_for_lock(path, timeout=30):
    """Until another process holds the mirror's writer lock: its run is recorded as running.

    Probing by taking the lock would, for a moment, hold it against the sync being waited for.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = "SELECT count(*) FROM etl_runs WHERE status = 'running'"
            if os.path.exists(path) and mirrored(path, running)[0][0]:
                return
        except sqlite3.Error:
            pass  # not made yet, or a commit in progress
        time.sleep(0.02)
    raise AssertionError("the first sync never took the lock")


@pytest.mark.parametrize("how", ["kill -9", "Ctrl-C"])
def test_4_killed_or_interrupted_sync_then_rerun_gives_the_same_mirror(
    sandbox_factory, tmp_path, how
):
    expected = reference_mirror(sandbox_factory, tmp_path)
    sandbox = sandbox_factory(seed=11, conversations=150, latency=0.05)
    path = tmp_path / "m.db"
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    proc = run_cli_process(["sync", "--db", str(path), "--page-size", "10"], env)
    wait_for_rows(path, 20)
    proc.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    stopped = mirrored(path, "SELECT count(*) FROM conversations")[0][0]
    assert stopped < 150
    if how == "Ctrl-C":
        assert proc.returncode == 130, err
        assert "Interrupted" in err and "Traceback" not in err
        run = mirror.recent_runs(sqlite3.connect(path), 1)[0]
        assert run["status"] == "interrupted"
        assert json.loads(run["counts"])["conversations"] == stopped  # what it got so far
    else:
        assert proc.returncode == -signal.SIGKILL
    assert cursor_is_safe(path, sandbox)
    sandbox.latency = 0
    rerun = run_cli_process(["sync", "--db", str(path), "--page-size", "10"], env)
    assert rerun.wait(timeout=60) == 0
    assert snapshot(path) == expected
    assert mirrored(path, "PRAGMA integrity_check") == [("ok",)]
    assert open(path, "rb").read(20)[18:20] == b"\x02\x02"  # WAL again after the first fill
    first, last = mirror.recent_runs(sqlite3.connect(path), 2)[::-1]
    assert last["status"] == "completed"
    # Nothing could record the end of the killed run; the next one marks it.
    assert first["status"] == ("interrupted" if how == "Ctrl-C" else "abandoned")


# 5. Deleted at the source: kept, with deleted_at --------------------------------------------


def test_5_full_sync_marks_conversations_deleted_at_the_source(sandbox, tmp_path):
    path = tmp_path / "m.db"
    do_sync(sandbox, path)
    gone = sorted(sandbox.store.conversation_ids())[:3]
    for cid in gone:
        sandbox.store.delete_conversation(cid)
    do_sync(sandbox, path)  # incremental cannot see hard deletes
    assert mirrored(path, "SELECT count(*) FROM conversations WHERE deleted_at IS NOT NULL") == [
        (0,)
    ]
    result = do_sync(sandbox, path, full=True)
    marked = mirrored(path, "SELECT id FROM conversations WHERE deleted_at IS NOT NULL ORDER BY 1")
    assert [m[0] for m in marked] == gone
    assert result.deleted["conversations"] == 3
    # kept, with their threads: a backup keeps what the source lost
    assert mirrored(path, "SELECT count(*) FROM threads WHERE conversation_id=?", (gone[0],))[0][0]


# 6. A second sync on the same mirror stops at once ------------------------------------------


def test_6_a_second_sync_on_the_same_mirror_stops_with_a_clear_message(sandbox, tmp_path):
    path = tmp_path / "m.db"
    sandbox.latency = 0.3  # slow enough that the first sync is surely still running
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    first = run_cli_process(["sync", "--db", str(path), "--page-size", "5", "--workers", "1"], env)
    wait_for_lock(path)
    second = run_cli_process(["sync", "--db", str(path)], env)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 5
    assert "another etl process is writing" in err
    assert first.poll() is None, "the first sync must not be disturbed"
    sandbox.latency = 0
    assert first.wait(timeout=60) == 0


# Runs, status, settings, faults, secrets ----------------------------------------------------


def test_runs_are_recorded_and_status_shows_them(sandbox, tmp_path):
    path = tmp_path / "m.db"
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    runner = CliRunner()
    result = runner.invoke(cli, ["sync", "--db", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "conversations" in result.output and "requests in" in result.output
    run = mirror.recent_runs(sqlite3.connect(path), 1)[0]
    counts = json.loads(run["counts"])
    assert run["status"] == "completed" and run["ended_at"] and run["requests"] > 0
    assert counts["conversations"] == len(sandbox.store.conversation_ids())
    status = runner.invoke(cli, ["status", "--db", str(path)])
    assert status.exit_code == 0
    assert "completed" in status.output and "conversations" in status.output
    assert str(counts["conversations"]) in status.output
    assert runner.invoke(cli, ["sync", "--db", str(path)], env=env).exit_code == 0
    status = runner.invoke(cli, ["status", "--db", str(path)])
    # The first run read everything, like --full; the second only what changed.
    assert " sync incremental " in status.output.splitlines()[2]
    assert " sync full " in status.output.splitlines()[3]


def test_environment_variables_configure_every_setting_and_flags_win(sandbox, tmp_path):
    path = tmp_path / "env.db"
    env = {
        "SMARTICKS_URL": sandbox.url,
        "SMARTICKS_API_KEY": "wrong-key",
        "SMARTICKS_DB": str(path),
    }
    runner = CliRunner()
    refused = runner.invoke(cli, ["sync", "--quiet"], env=env)
    assert refused.exit_code == 4
    ok = runner.invoke(cli, ["sync", "--quiet", "--api-key", sandbox.api_key], env=env)
    assert ok.exit_code == 0 and ok.output == ""
    assert mirrored(path, "SELECT count(*) FROM conversations")[0][0] > 0


def test_a_refused_key_is_one_line_and_exit_4_without_leaking_it(sandbox, tmp_path):
    proc = run_cli_process(
        ["sync", "--db", str(tmp_path / "m.db")],
        {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": "not-the-key-123"},
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 4
    assert err.strip().count("\n") == 0 and "refused" in err.lower()
    assert "Traceback" not in err and "not-the-key-123" not in out + err


def test_faults_are_retried_and_the_sync_still_completes(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(seed=5, conversations=80, error_rate=0.15, rate_limit_every=7)
    sandbox.drop_rate = 0.05
    path = tmp_path / "m.db"
    client = Client(sandbox.url, sandbox.api_key, retry=RetryPolicy(base_delay=0.01, attempts=12))
    db = mirror.open_mirror(path)
    sync(client, db.conn, SyncOptions(page_size=10))
    assert client.retries_made > 0
    assert mirror_state(path) == source_state(sandbox)


def test_workers_caps_the_requests_in_flight_though_more_segments_are_read(
    sandbox_factory, tmp_path
):
    sandbox = sandbox_factory(seed=3, conversations=300)
    lock = threading.Lock()
    now = most = 0

    def slow_list(method, path, query):  # every request: lists, their planning, small ones
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)
        time.sleep(0.02)
        with lock:
            now -= 1

    sandbox.on_request = slow_list
    path = tmp_path / "m.db"
    do_sync(sandbox, path, page_size=10, workers=2)
    assert most == 2
    assert mirror_state(path) == source_state(sandbox)


def test_after_a_429_no_worker_sends_until_retry_after(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(
        seed=4, conversations=300, latency=0.01, rate_limit_every=15, retry_after=1
    )
    arrivals = []  # (when, the fault the sandbox chose) for every request, in arrival order
    decide = sandbox._fault_for

    def spy(path):
        decision = decide(path)
        arrivals.append((time.monotonic(), decision))
        return decision

    sandbox._fault_for = spy
    path = tmp_path / "m.db"
    do_sync(sandbox, path, page_size=10, workers=4)
    assert mirror_state(path) == source_state(sandbox)
    limited = [when for when, decision in arrivals if decision == 429]
    assert len(limited) >= 3
    for when in limited:
        # Requests already on their way may still land just after the 429; then none until
        # its Retry-After (1 s) has passed, from any worker.
        assert [t for t, _ in arrivals if when + 0.2 < t < when + 0.9] == []


def test_the_api_key_never_reaches_the_mirror_or_the_output(sandbox, tmp_path):
    path = tmp_path / "m.db"
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    result = CliRunner().invoke(cli, ["sync", "--db", str(path)], env=env)
    assert result.exit_code == 0
    assert sandbox.api_key not in result.output
    for file in tmp_path.iterdir():
        assert sandbox.api_key.encode() not in file.read_bytes(), file


@pytest.mark.parametrize("where", ["missing folder", "a folder"])
def test_a_mirror_path_that_cannot_be_created_is_one_clear_line(tmp_path, where):
    path = tmp_path / "nowhere" / "m.db" if where == "missing folder" else tmp_path
    env = {"SMARTICKS_URL": "http://127.0.0.1:9", "SMARTICKS_API_KEY": "k"}  # never contacted
    result = CliRunner().invoke(cli, ["sync", "--db", str(path)], env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    named = tmp_path / "nowhere" if where == "missing folder" else tmp_path
    assert str(named) in lines[0]
    assert list(tmp_path.iterdir()) == []  # no lock file or mirror left behind


def test_plain_http_to_a_remote_host_warns_before_any_request(capsys):
    make_client("http://help.example.org", "k")  # builds the client only; nothing is sent
    assert "plain http" in capsys.readouterr().err
    make_client("http://127.0.0.1:9", "k")
    assert capsys.readouterr().err == ""


def test_timelogs_are_mirrored_behind_the_flag(sandbox, tmp_path):
    path = tmp_path / "m.db"
    do_sync(sandbox, path)
    assert mirrored(path, "SELECT count(*) FROM timelogs")[0][0] == 0
    do_sync(sandbox, path, full=True, timelogs=True)
    assert mirrored(path, "SELECT count(*) FROM timelogs")[0][0] > 0


def test_a_sync_loads_no_export_or_load_code():
    probe = (
        "import sys; from etl.cli import cli; cli.get_command(None, 'sync'); "
        "print(sorted(m for m in ('etl.export', 'etl.load', 'etl.mapping') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr
    names = cli.list_commands(None)
    assert [cli.get_command(None, name).name for name in names] == names  # each one found
    modules = {importlib.import_module(f"etl.cli.{m}") for m in COMMAND_MODULES.values()}
    assert sorted(c.name for m in modules for c in m.COMMANDS) == names  # and none left out
    assert {"sync", "export", "load", "sandbox"} <= set(names)


class RateLimitingProxy:
    """A proxy that answers some list requests 429 with `Retry-After: 1`, at a moment when every
    worker has a request waiting on it, and holds the other answers back for a moment after.

    So no request is on its way when a 429 goes out, and every worker learns of it before it
    can send again: any request arriving within the second after a 429 broke the promise.
    """

    HOLD = 0.5  # seconds the other answers wait after a 429, for the client to take it in

    def __init__(self, upstream: str, workers: int, every: int):
        self.passing = forward(upstream)
        self.workers, self.every = workers, every
        self.changed = threading.Condition()
        self.pending = self.listed = 0
        self.hold_until = 0.0
        self.arrivals: list[float] = []
        self.limited: list[float] = []

    def handle(self, request):
        with self.changed:
            self.arrivals.append(time.monotonic())
            self.pending += 1
            self.changed.notify_all()
            if request.path.startswith("/api/conversations"):
                self.listed += 1
                if self.listed % self.every == 0 and self.changed.wait_for(
                    lambda: self.pending >= self.workers, timeout=1
                ):
                    self.limited.append(time.monotonic())
                    self.hold_until = self.limited[-1] + self.HOLD
                    self.pending -= 1
                    return Answer(429, {"Retry-After": "1"}, b'{"message": "slow down"}')
        try:
            answer = self.passing(request)
            while (wait := self.hold_until - time.monotonic()) > 0:
                time.sleep(wait)
            return answer
        finally:
            with self.changed:
                self.pending -= 1


def test_no_worker_sends_a_request_within_a_retry_after(sandbox_factory, tmp_path):
    # With 50 ms to each answer, the workers spend their time waiting on the network, so
    # there are moments when all four wait on the proxy.
    sandbox = sandbox_factory(seed=4, conversations=300, latency=0.05)
    limiter = RateLimitingProxy(sandbox.url, workers=4, every=8)
    with serve(limiter.handle) as front:
        client = Client(front.url, sandbox.api_key)
        db = mirror.open_mirror(tmp_path / "m.db")
        sync(client, db.conn, SyncOptions(page_size=10, workers=4))
        db.conn.close()
    assert mirror_state(tmp_path / "m.db") == source_state(sandbox)
    assert len(limiter.limited) >= 2
    for when in limiter.limited:
        inside = [t - when for t in limiter.arrivals if when < t < when + 1.0]
        assert inside == [], f"requests {inside} s after a 429 with Retry-After: 1"


def test_an_incremental_sync_imports_neither_sqlite_utils_nor_pandas(sandbox, tmp_path):
    path = tmp_path / "m.db"
    do_sync(sandbox, path)
    probe = (
        "import sys\nfrom etl.cli import main\n"
        "try:\n    main(['sync', '--quiet', '--db', sys.argv[1]])\n"
        "except SystemExit as end:\n    assert not end.code, end.code\n"
        "print(sorted(m for m in ('sqlite_utils', 'pandas', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    run = subprocess.run(
        [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    assert mirror.recent_runs(sqlite3.connect(path), 1)[0]["status"] == "completed"


def test_ctrl_c_stops_a_sync_that_waits_out_a_long_retry_after(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(
        seed=3, conversations=50, rate_limit_every=1, retry_after=100, fault_paths="/api/conv"
    )
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    proc = run_cli_process(["sync", "--db", str(tmp_path / "m.db")], env)
    deadline = time.monotonic() + 30
    while not sandbox.status_counts[429] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.status_counts[429], "the sync never met the 429"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)  # not the 100 s the server asked for
    assert proc.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
