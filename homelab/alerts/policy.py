"""Whether a node event is marked for a message: the event kinds chosen, quiet hours, the first sighting.

Prefect's triggers have no notion of a time of day, so quiet hours are decided here, where the
event is emitted: the event carries the mark in its `homelab.alert` resource label and the alert
automations match only `send`. Repeats within `min_repeat` are Prefect's business (the trigger's
`within`, per node), so this decision needs no memory of earlier messages.

The choice for quiet hours: nothing is sent but what `urgent` names. A node still down when the
quiet hours end is reported once then (its down events are marked `send` again for `min_repeat`
after the end, and the trigger's `within` lets one through), so a 3 a.m. failure is waiting in
the morning; what happened and ended inside the quiet hours (a recovery) is not sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from homelab.alerts.settings import AlertKind, Notify

__all__ = ["ALERT_LABEL", "AlertMark", "alert_mark", "in_quiet_hours", "quiet_ended_within"]

ALERT_LABEL = "homelab.alert"


class AlertMark(StrEnum):
    """The `homelab.alert` label of a node event."""

    SEND = "send"
    QUIET = "quiet"  # held by quiet hours
    REPEAT = "repeat"  # the node was already down at the previous sweep: reported then
    OFF = "off"  # no `notify:` section, or this kind is not chosen


def in_quiet_hours(notify: Notify, at: datetime) -> bool:
    """Whether `at` (timezone-aware) falls in the quiet hours, read in the notify section's zone."""
    if notify.quiet_hours is None:
        return False
    return notify.quiet_hours.contains(at.astimezone(notify.zone()).time())


def quiet_ended_within(notify: Notify, at: datetime, span: timedelta) -> bool:
    """Whether the quiet hours ended at most `span` before `at` (and `at` is outside them)."""
    if notify.quiet_hours is None or in_quiet_hours(notify, at):
        return False
    local = at.astimezone(notify.zone())
    end = datetime.combine(local.date(), notify.quiet_hours.end, tzinfo=local.tzinfo)
    if end > local:
        end -= timedelta(days=1)
    return local - end <= span


def _urgent(notify: Notify, kind: AlertKind, tier: str) -> bool:
    return kind in notify.urgent.events and (not notify.urgent.tiers or tier in notify.urgent.tiers)


def alert_mark(notify: Notify | None, kind: AlertKind, tier: str, at: datetime, first: bool = True) -> AlertMark:
    """The mark of an event of `kind` about a node of `tier` that happened `at`.

    Args:
        notify: the cluster file's `notify:` section; None: no alerts.
        kind: what happened.
        tier: the node's tier (for `urgent.tiers`).
        at: when it happened (timezone-aware): the sweep's probe time, the recovery's end.
        first: False for a node already down at the previous sweep (the sweep repeats its event).
    """
    if notify is None or kind not in notify.events:
        return AlertMark.OFF
    if in_quiet_hours(notify, at) and not _urgent(notify, kind, tier):
        return AlertMark.QUIET
    if first or (kind is AlertKind.NODE_DOWN and quiet_ended_within(notify, at, notify.min_repeat)):
        return AlertMark.SEND
    return AlertMark.REPEAT
