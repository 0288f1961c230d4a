"""PNG charts of a report (matplotlib, Agg backend: no display, safe in a worker or a test).

Why PNG bytes and not files: the same image goes into a Prefect markdown artifact (as a
base64 data URI), into the standalone HTML, and beside the CSV files, so the caller decides.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt
import pandas as pd

__all__ = ["data_uri", "line_chart_png"]

_SIZE_IN = (9.0, 3.6)
_DPI = 90


def line_chart_png(frame: pd.DataFrame, title: str, ylabel: str) -> bytes:
    """One line per column over the index (time); an empty frame draws a "no data" panel."""
    figure, axes = plt.subplots(figsize=_SIZE_IN, dpi=_DPI)
    try:
        if frame.empty:
            axes.text(0.5, 0.5, "no data in this period", ha="center", va="center", transform=axes.transAxes)
            axes.set_axis_off()
        else:
            for column in frame.columns:
                axes.plot(frame.index, frame[column], label=str(column), linewidth=1)
            axes.set_ylabel(ylabel)
            axes.grid(alpha=0.3)
            if len(frame.columns) <= 12:
                axes.legend(loc="best", fontsize="small")
            figure.autofmt_xdate()
        axes.set_title(title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def data_uri(png: bytes) -> str:
    """`data:image/png;base64,...`: an image a markdown artifact or an HTML page carries inline."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
