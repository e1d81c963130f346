"""Sandbox fixtures: real Smarticks-API servers on loopback ports, stopped after each test."""

import pytest

from etl.sandbox import Sandbox


@pytest.fixture
def sandbox():
    """A started sandbox with 120 seeded conversations (seed 7)."""
    with Sandbox(seed=7, conversations=120) as server:
        yield server


@pytest.fixture
def empty_sandbox():
    """A started sandbox with only mailboxes, users, folders and field definitions."""
    with Sandbox(empty=True) as server:
        yield server


@pytest.fixture
def sandbox_factory():
    """`make(**kwargs)` starts a Sandbox; every one made is stopped at teardown."""
    made = []

    def make(**kwargs):
        server = Sandbox(**kwargs).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()
