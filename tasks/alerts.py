"""Prefect tasks of alerts: the recovery outcome as a node event, marked for a message or not.

The event is what the alert automations (`homelab.alerts.automations`, created by `homelab up`)
listen for; its `homelab.alert` label is `homelab.alerts.alert_mark`'s decision (quiet hours,
the kinds chosen). Emitted inside the recover-node run, so Prefect relates it to that run and
the message can link to it. The payload holds the incident's words, never a secret (an
incident holds none).
"""

from __future__ import annotations

from prefect import task
from prefect.events import emit_event

from homelab.alerts import ALERT_LABEL, EVENT_OF, AlertKind, Notify, alert_mark
from homelab.recovery.plan import Incident, Outcome
from tasks.options import task_options

__all__ = ["emit_recovery_event", "recovery_kind"]


def recovery_kind(outcome: Outcome) -> AlertKind | None:
    """The alert kind of a recovery's outcome: a flap is a recovery too; a skipped run says nothing new."""
    if outcome in (Outcome.RECOVERED, Outcome.FLAP):
        return AlertKind.RECOVERED
    if outcome is Outcome.FAILED:
        return AlertKind.RECOVERY_FAILED
    return None


def _time_to_recover(incident: Incident) -> str:
    seconds = incident.time_to_recover_s
    if seconds is not None:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    return "none: it came back before recovery acted" if incident.outcome is Outcome.FLAP else "n/a"


@task(name="emit-recovery-event", **task_options(idempotent=False))
def emit_recovery_event(incident: Incident, tier: str, notify: Notify | None) -> str | None:
    """Emit `homelab.node.recovered` or `homelab.node.recovery-failed` for the incident (nothing when skipped).

    Returns:
        the event's name, or None when the outcome emits none.
    """
    kind = recovery_kind(incident.outcome)
    if kind is None:
        return None
    mark = alert_mark(notify, kind, tier, incident.finished_at)
    emit_event(
        event=EVENT_OF[kind],
        resource={
            "prefect.resource.id": f"homelab.node.{incident.node}",
            "prefect.resource.name": incident.node,
            "homelab.node": incident.node,
            "homelab.tier": tier,
            ALERT_LABEL: mark.value,
        },
        payload={
            "outcome": incident.outcome.value,
            "reason": incident.reason,
            "attempts": incident.attempts,
            "started_at": incident.started_at.isoformat(),
            "finished_at": incident.finished_at.isoformat(),
            "time_to_recover_s": incident.time_to_recover_s,
            "time_to_recover": _time_to_recover(incident),
        },
    )
    return EVENT_OF[kind]
