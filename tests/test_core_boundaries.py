"""The domain core stays plain Python: no Prefect import, and a declared public surface."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import homelab

CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages(homelab.__path__, "homelab."))


def test_core_imports_no_prefect() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"homelab/ imported Prefect: {result.stdout[:300]}"


def test_every_core_module_declares_its_exports() -> None:
    for name in CORE_MODULES:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        missing = [attr for attr in exported if not hasattr(module, attr)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"
