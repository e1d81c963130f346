"""The package imports where the OS has no fcntl (Windows), and its lock still works there."""

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
sys.modules["fcntl"] = None  # an import of it now raises ImportError, as on Windows
import etl
names = [m.name for m in pkgutil.walk_packages(etl.__path__, "etl.")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_module_imports_without_fcntl():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 30  # every module was found and imported
