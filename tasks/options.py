"""Task options shared by the rollout tasks: results never cached or stored; retries only where repeating is safe.

STYLE §5: only idempotent tasks retry. `SAFE` is for a task that only looks, or whose repeat
changes nothing (a verified copy, an upload the node checks, a wait); `ONCE` for one that
changes what runs, which a failure must stop rather than repeat behind the user's back.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

__all__ = ["COMMON", "ONCE", "SAFE"]

COMMON: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
# Safe to repeat: a transient engine, SSH or HTTP error is worth another try.
SAFE: dict[str, Any] = {**COMMON, "retries": 2, "retry_delay_seconds": 5}
ONCE: dict[str, Any] = {**COMMON, "retries": 0}
