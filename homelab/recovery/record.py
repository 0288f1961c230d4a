"""A recovery's incident into the history: one `incidents` row, one `incident_actions` row per step, the outcome.

Both ways of recovering write it the same way (the `recover-node` flow's `record-incident`
task and `homelab recover`), so the reports count every recovery, however it was started.
"""

from __future__ import annotations

from pathlib import Path

from homelab.history import open_history
from homelab.recovery.plan import Incident, Outcome

__all__ = ["store_incident"]


def store_incident(incident: Incident, history_url: str, base_dir: Path) -> int | None:
    """Write `incident` to the history at `history_url` (a relative SQLite path taken from `base_dir`).

    A flap is stored too (it is worth counting); RECOVERED and FLAP close the incident. A
    SKIPPED run touched nothing and is not stored.

    Returns:
        The incident's id in the history; None for a skipped run.

    Raises:
        HistoryError: the history cannot be opened or written.
    """
    if incident.outcome is Outcome.SKIPPED:
        return None
    with open_history(history_url, relative_to=base_dir) as history:
        incident_id = history.open_incident(
            incident.node, None, incident.started_at, f"{incident.outcome}: {incident.reason}"
        )
        for action in incident.actions:
            history.add_incident_action(
                incident_id, action.at, action.action, "ok" if action.ok else "failed", action.detail
            )
        history.add_incident_action(
            incident_id, incident.finished_at, "outcome", incident.outcome.value, incident.reason
        )
        if incident.outcome in (Outcome.RECOVERED, Outcome.FLAP):
            history.close_incident(incident_id, incident.finished_at)
    return incident_id
