"""The alert automations `homelab up` keeps on the Prefect server: one per event kind, described as plain data.

Each one is a reactive event trigger on homelab's node events marked `send` (`policy.py`), one
bucket per node (`for_each` the node's resource id) lasting `min_repeat`: Prefect fires on the
first matching event and ignores the node's further events of that kind until the window ends,
so a flapping node sends one message per window (prefect/server/events/triggers.py, `evaluate`,
cases 1 and 3). Its actions send the message through each named block.

Subject and body are Jinja templates that Prefect's actions service renders
(prefect/server/events/actions.py, `JinjaTemplateAction`): `event` is the triggering event and
`flow_run` the run that emitted it (Prefect relates an event to its run), `ui_url` its page.
"""

from __future__ import annotations

from datetime import timedelta

from homelab.alerts.policy import ALERT_LABEL, AlertMark
from homelab.alerts.settings import AlertKind, Notify
from homelab.frozen import Frozen

__all__ = ["AUTOMATION_PREFIX", "EVENT_OF", "NODE_RESOURCE", "AlertAutomation", "alert_automations"]

AUTOMATION_PREFIX = "homelab-alert-"
NODE_RESOURCE = "homelab.node.*"
EVENT_OF = {
    AlertKind.NODE_DOWN: "homelab.node.down",
    AlertKind.RECOVERY_FAILED: "homelab.node.recovery-failed",
    AlertKind.RECOVERED: "homelab.node.recovered",
}

_NODE = "{{ event.resource['homelab.node'] }}"
_TIER = "{{ event.resource['homelab.tier'] }}"
_RUN = "{% if flow_run and flow_run|ui_url %}\nFlow run: {{ flow_run|ui_url }}{% endif %}"
_SUBJECT = {
    AlertKind.NODE_DOWN: f"homelab: node {_NODE} is down",
    AlertKind.RECOVERY_FAILED: f"homelab: node {_NODE} was not recovered",
    AlertKind.RECOVERED: f"homelab: node {_NODE} recovered",
}
_BODY = {
    AlertKind.NODE_DOWN: f"Node {_NODE} (tier {_TIER}) is down at {{{{ event.occurred }}}}.\n"
    "{{ event.payload.summary }}" + _RUN,
    AlertKind.RECOVERY_FAILED: f"Node {_NODE} (tier {_TIER}) is still down: its recovery ended "
    "{{ event.payload.outcome }} after {{ event.payload.attempts }} attempt(s).\n{{ event.payload.reason }}" + _RUN,
    AlertKind.RECOVERED: f"Node {_NODE} (tier {_TIER}) serves again: {{{{ event.payload.outcome }}}}, "
    "time to recover {{ event.payload.time_to_recover }}.\n{{ event.payload.reason }}" + _RUN,
}


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} min" if minutes < 120 else f"{minutes / 60:g} h"


class AlertAutomation(Frozen):
    """One automation as `homelab up` creates it; the app layer turns it into Prefect's own model."""

    name: str
    description: str
    kind: AlertKind
    event: str
    match: dict[str, str]
    within: timedelta
    blocks: list[str]
    subject: str
    body: str


def alert_automations(notify: Notify | None) -> list[AlertAutomation]:
    """The automations `notify` asks for, in the order of its `events`; none without a section."""
    if notify is None:
        return []
    return [
        AlertAutomation(
            name=f"{AUTOMATION_PREFIX}{kind.value.replace('_', '-')}",
            description=f"homelab alert, kept by `homelab up` from the cluster file's notify: {EVENT_OF[kind]} "
            f"events marked {ALERT_LABEL}=send, one message per node within {_minutes(notify.min_repeat)}, "
            f"through {', '.join(notify.blocks)}",
            kind=kind,
            event=EVENT_OF[kind],
            match={"prefect.resource.id": NODE_RESOURCE, ALERT_LABEL: AlertMark.SEND.value},
            within=notify.min_repeat,
            blocks=list(notify.blocks),
            subject=_SUBJECT[kind],
            body=_BODY[kind],
        )
        for kind in dict.fromkeys(notify.events)
    ]
