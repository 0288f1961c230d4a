"""Alerts without a server: the `notify:` section as the cluster file gives it, the quiet-hours decision
with a fixed clock, and the automations `homelab up` would create.

The decision is a table (tests/cases/alerts/marks.jsonl, one case per row with its id): a new
case needs no new code. Prefect's side of the same path is in test_alerts_prefect.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from homelab.alerts import AlertKind, AlertMark, Notify, alert_automations, alert_mark, in_quiet_hours
from homelab.errors import InventoryError
from homelab.inventory import load_inventory

CASES = Path(__file__).parent / "cases" / "alerts" / "marks.jsonl"
NODE = {
    "name": "gpu1",
    "tier": "gpu",
    "host": "127.0.0.1",
    "endpoints": [{"name": "llm", "kind": "ollama", "url": "http://127.0.0.1:11434"}],
}


def _cluster(tmp_path: Path, notify: Any) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"nodes": [NODE], "notify": notify}, sort_keys=False))
    return path


def test_notify_section_is_read_with_its_defaults(tmp_path: Path) -> None:
    notify = load_inventory(_cluster(tmp_path, {"blocks": ["custom-webhook/phone"]})).notify
    assert notify is not None
    assert notify.events == [AlertKind.NODE_DOWN, AlertKind.RECOVERY_FAILED, AlertKind.RECOVERED]
    assert notify.min_repeat == timedelta(minutes=30)
    assert notify.quiet_hours is None and notify.timezone == "UTC"
    full = {
        "blocks": ["slack-webhook/home", "discord-webhook/ops"],
        "events": ["node_down"],
        "quiet_hours": "23:00-07:00",
        "timezone": "Europe/Berlin",
        "urgent": {"events": ["node_down"], "tiers": ["gpu"]},
        "min_repeat": "1h30m",
    }
    notify = load_inventory(_cluster(tmp_path, full)).notify
    assert notify is not None and str(notify.quiet_hours) == "23:00-07:00"
    assert notify.min_repeat == timedelta(minutes=90)


def test_no_notify_section_means_no_alerts(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"nodes": [NODE]}))
    assert load_inventory(path).notify is None
    assert alert_automations(None) == []


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ({"blocks": ["phone"]}, "notify.blocks[0]: 'phone' is not a block reference: write BLOCK-TYPE-SLUG/BLOCK-NAME"),
        ({"blocks": []}, "notify.blocks: "),
        ({"blocks": ["custom-webhook/a"], "events": ["node_up"]}, "notify.events[0]: must be 'node_down'"),
        ({"blocks": ["custom-webhook/a"], "quiet_hours": "23:00-7"}, "notify.quiet_hours: '23:00-7' is not a window"),
        ({"blocks": ["custom-webhook/a"], "quiet_hours": "07:00-07:00"}, "starts where it ends"),
        ({"blocks": ["custom-webhook/a"], "timezone": "../etc/passwd"}, "notify.timezone: '../etc/passwd' is not a"),
        ({"blocks": ["custom-webhook/a"], "timezone": "X" * 5000}, "is not a time zone"),
        ({"blocks": ["custom-webhook/a"], "min_repeat": "10s"}, "notify.min_repeat: must be between 1m and 24h"),
        ({"blocks": ["custom-webhook/a"], "min_repeat": "30"}, "notify.min_repeat: time: missing unit"),
        ({"blocks": ["custom-webhook/a"], "urgent": {"event": ["node_down"]}}, "notify.urgent.event"),
    ],
)
def test_bad_notify_sections_name_the_field_and_line(tmp_path: Path, notify: Any, expected: str) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(_cluster(tmp_path, notify))
    message = str(caught.value)
    assert expected in message
    assert message.startswith(f"{tmp_path / 'cluster.yaml'}:")
    assert len(message) < 400  # a hostile value is quoted short


def _case_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("case", _case_rows(), ids=lambda c: c["id"])
def test_alert_mark_with_a_fixed_clock(case: dict[str, Any]) -> None:
    notify = Notify.model_validate(case["notify"]) if case["notify"] is not None else None
    at = datetime.fromisoformat(case["at"])
    mark = alert_mark(notify, AlertKind(case["kind"]), case.get("tier", "gpu"), at, first=case.get("first", True))
    assert mark is AlertMark(case["mark"])


def test_quiet_hours_are_read_in_their_time_zone() -> None:
    notify = Notify(blocks=["custom-webhook/a"], quiet_hours="23:00-07:00", timezone="Asia/Tokyo")
    # 23:30 UTC is 08:30 in Tokyo: not quiet there; 15:00 UTC is midnight in Tokyo: quiet.
    assert not in_quiet_hours(notify, datetime.fromisoformat("2026-01-10T23:30:00+00:00"))
    assert in_quiet_hours(notify, datetime.fromisoformat("2026-01-10T15:00:00+00:00"))


def test_one_automation_per_kind_matching_only_events_marked_send() -> None:
    notify = Notify(blocks=["custom-webhook/a", "slack-webhook/b"], events=["recovered", "node_down"], min_repeat="45m")
    automations = alert_automations(notify)
    assert [a.name for a in automations] == ["homelab-alert-recovered", "homelab-alert-node-down"]
    assert [a.event for a in automations] == ["homelab.node.recovered", "homelab.node.down"]
    for automation in automations:
        assert automation.match == {"prefect.resource.id": "homelab.node.*", "homelab.alert": "send"}
        assert automation.within == timedelta(minutes=45)
        assert automation.blocks == ["custom-webhook/a", "slack-webhook/b"]
        assert "flow_run|ui_url" in automation.body and "homelab.node" in automation.subject
    assert "time to recover {{ event.payload.time_to_recover }}" in automations[0].body
    assert automations[1].description.endswith(
        "homelab.node.down events marked homelab.alert=send, one message per node within 45 min, "
        "through custom-webhook/a, slack-webhook/b"
    )
