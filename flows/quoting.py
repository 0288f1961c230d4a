"""Big task arguments passed through Prefect untouched, typed as the values they wrap."""

from __future__ import annotations

from typing import TypeVar, cast

from prefect.utilities.annotations import quote

__all__ = ["quoted"]

_T = TypeVar("_T")


def quoted(value: _T) -> _T:
    """`quote(value)`, typed as `value`, for a task argument with thousands of fields.

    Prefect walks every argument of a task call, field by field, looking for futures to wait
    for; for an inventory or a sweep report that walk costs more than the task. `quote` skips
    it, and Prefect unwraps the value before the task runs, so the task receives `value` itself:
    the cast says so to the type checker, which sees only the wrapper.
    """
    return cast(_T, quote(value))
