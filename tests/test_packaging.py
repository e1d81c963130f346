"""The shipped mappings ship: a wheel holds them, and an installed tool uses them from anywhere."""

import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_installed_without_the_checkout_loads_with_a_shipped_mapping(
    empty_sandbox, tmp_path
):
    pytest.importorskip("wheel", reason="pip install -e '.[test]' brings it")
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__")
    for folder in ("etl", "mappings"):
        shutil.copytree(ROOT / folder, source / folder, ignore=skip)
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(dist), str(source)], check=True, capture_output=True)
    (wheel,) = dist.glob("smarticks_etl-*.whl")

    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies, as a system's site-packages would hold them (not this checkout's etl).
    deps = {str(Path(module.__file__).parent.parent) for module in (requests, click)}
    Path(site, "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",
        "SMARTICKS_URL": empty_sandbox.url,
        "SMARTICKS_API_KEY": empty_sandbox.api_key,
        "SMARTICKS_DB": str(elsewhere / "l.db"),
    }
    where = subprocess.run(
        [python, "-c", "import etl.mapping as m; print(m.SHIPPED); print(m.shipped_mappings())"],
        cwd=elsewhere,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert where[0] == str(Path(site) / "etl" / "mappings")
    shipped = sorted(p.stem for p in (ROOT / "mappings").glob("*.toml"))
    assert where[1] == str(shipped) and "zendesk" in shipped
    tickets = ROOT / "samples" / "zendesk" / "tickets.json"
    command = [python, "-m", "etl", "load", "conversations", str(tickets), "--mapping", "zendesk"]
    result = subprocess.run(
        [*command, "--mailbox", "1", "--dry-run"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Checked (dry run, nothing sent) conversations" in result.stdout
    assert "(mapping zendesk)" in result.stdout
