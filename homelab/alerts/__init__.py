"""Alerts: the `notify:` section, when a node event is marked for a message, and the automations that send it.

Messages go through Prefect's own notification blocks and automations: homelab marks its node
events (`policy.py`, plain code with the clock passed in) and describes one automation per event
kind (`automations.py`); `homelab up` creates those automations on the server, whose triggers
and actions services do the sending. This package never imports Prefect.
"""

from __future__ import annotations

from homelab.alerts.automations import AUTOMATION_PREFIX, EVENT_OF, AlertAutomation, alert_automations
from homelab.alerts.policy import ALERT_LABEL, AlertMark, alert_mark, in_quiet_hours
from homelab.alerts.settings import AlertKind, Notify, QuietHours, Urgent

__all__ = [
    "ALERT_LABEL",
    "AUTOMATION_PREFIX",
    "EVENT_OF",
    "AlertAutomation",
    "AlertKind",
    "AlertMark",
    "Notify",
    "QuietHours",
    "Urgent",
    "alert_automations",
    "alert_mark",
    "in_quiet_hours",
]
