"""The demo's closing suggestions run as printed, in a shell where the venv is not activated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from etl.cli.sandbox_cmd import this_etl


def test_the_look_around_lines_work_pasted_into_a_shell_without_the_venv(tmp_path):
    script = Path(sys.executable).parent / "etl"  # what `pip install` put in the venv
    assert script.is_file()
    bare = {**os.environ, "PATH": "/usr/bin:/bin"}  # no venv on the PATH, none activated
    bare.pop("VIRTUAL_ENV", None)
    demo = subprocess.run(
        [os.path.relpath(script, tmp_path), "demo", "--conversations", "20"],
        cwd=tmp_path,
        env=bare,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    suggested = demo.stdout.split("Look around:\n", 1)[1].strip().splitlines()
    assert len(suggested) == 3
    for line in suggested:
        assert line.strip().startswith(str(script.absolute()))
        done = subprocess.run(
            line, shell=True, cwd=tmp_path, env=bare, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, (line, done.stderr)
    assert (tmp_path / "export" / "conversations.csv").is_file()


def test_run_as_a_module_the_suggestions_name_the_python_that_ran():
    assert this_etl("/x/lib/python3.11/site-packages/etl/__main__.py") == f"{sys.executable} -m etl"
    assert this_etl("/no/such/etl") == f"{sys.executable} -m etl"
    assert this_etl(sys.executable) == sys.executable
