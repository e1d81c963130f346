"""`etl verify` against a target the ledger holds nothing for says so and exits non-zero."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from etl.cli import cli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(sandbox, *args, db):
    env = {"SMARTICKS_URL": sandbox.url, "SMARTICKS_API_KEY": sandbox.api_key}
    return CliRunner().invoke(cli, [*map(str, args), "--db", str(db)], env=env)


def test_verify_against_a_target_nothing_was_loaded_into_fails_naming_where_loads_went(
    sandbox_factory, tmp_path
):
    loaded_into = sandbox_factory(empty=True)
    elsewhere = sandbox_factory(empty=True)
    db = tmp_path / "l.db"
    source = SAMPLES / "helpscout" / "conversations.json"
    loading = run(
        loaded_into,
        "load",
        "conversations",
        source,
        "--mapping",
        "helpscout",
        "--mailbox",
        1,
        db=db,
    )
    assert loading.exit_code == 0, loading.output
    assert run(loaded_into, "verify", db=db).exit_code == 0

    result = run(elsewhere, "verify", db=db)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: the ledger holds nothing loaded into {elsewhere.url}: "
        f"it holds loads into {loaded_into.url}"
    )
    result = run(loaded_into, "verify", "--system", "zendesk", db=db)
    assert result.exit_code == 2 and "nothing loaded from zendesk into" in result.output

    fresh = tmp_path / "fresh.db"
    fresh.touch()
    result = run(loaded_into, "verify", db=fresh)
    assert result.exit_code == 2 and result.output.strip().endswith("it holds no loads")
