"""Task options from the one question that decides retries: is repeating this task safe?

STYLE §5: only idempotent tasks retry. A task that only looks, or whose repeat changes nothing
(a verified copy, an upload the node checks, a wait), is idempotent: a transient engine, SSH or
HTTP error is worth another try. One that changes what runs, appends a row, sends an event or
publishes an artifact is not: a failure must stop it rather than repeat it behind the user's back.
Results are never cached or persisted: each run looks at the cluster afresh.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

__all__ = ["RETRIES", "RETRY_DELAY_S", "task_options"]

RETRIES = 2
RETRY_DELAY_S = 5


def task_options(*, idempotent: bool) -> dict[str, Any]:
    """`@task(name=..., **task_options(idempotent=...))`: retries for an idempotent task, none otherwise."""
    retry = {"retries": RETRIES, "retry_delay_seconds": RETRY_DELAY_S} if idempotent else {"retries": 0}
    return {"cache_policy": NO_CACHE, "persist_result": False, **retry}
