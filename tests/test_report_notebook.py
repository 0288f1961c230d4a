"""notebooks/health_report.ipynb runs top to bottom against a generated history, so it cannot rot."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from homelab.history import open_history
from homelab.reports.synthetic import SyntheticHistory, write_synthetic_history

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "health_report.ipynb"
KERNEL_TIMEOUT_S = 180


def test_notebook_executes_and_shows_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    with open_history(f"sqlite:///{tmp_path}/history.db") as history:
        write_synthetic_history(history, SyntheticHistory(start=start, days=1, endpoints=20))
    monkeypatch.setenv("HOMELAB_HISTORY_URL", f"sqlite:///{tmp_path}/history.db")
    monkeypatch.setenv("HOMELAB_REPORT_SINCE", "2d")
    # The kernel imports homelab from this checkout, wherever pytest was started.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parent.parent), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("uptime_pct" in t for t in tables) and any("headroom_gib" in t for t in tables)
