"""Alerts on a real Prefect server: the automations `homelab up` keeps, and the messages Prefect's own
services send through a real notification block to a loopback receiver.

The server is `prefect server start` with its default services (the triggers and actions services
evaluate automations and send notifications). The block is Prefect's `CustomWebhookNotificationBlock`
(the generic webhook; ntfy is the same block against ntfy's publish URL), whose bearer token is a
block secret; the receiver refuses a POST without it. The health-sweep and recover-node flows run in
another process, as a worker would run them, and emit their real events; nothing here sends a message.

One incident per node: the first sweep that finds a node down sends one message, the next sweep
(still down) none, the recovery's outcome one more (after it, with the time to recover), and a
node that comes back and goes down again within `min_repeat` no second down message.

Email and ntfy go through homelab's `AppriseURL` block: a `mailto://` URL with the SMTP password in
it to a local SMTP sink (aiosmtpd) that requires that login, and an `ntfy://` URL with an access
token to the receiver, answering as an ntfy server that requires it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from homelab.alerts import Notify
from homelab_app.demo.receiver import Message, Receiver, running_receiver
from homelab_app.stack.alerts import sync_alerts
from homelab_app.stack.prefect_api import open_client
from tests.fixtures.net import LOOPBACK, free_port
from tests.fixtures.ollama import StandInServer
from tests.fixtures.prefect_server import PrefectServer

REPO = Path(__file__).resolve().parents[1]
TOKEN = "alert-token-3b1f9c0d7e"  # the block's secret: must reach the receiver and nothing else
SMTP_PASSWORD = "smtp-pw-8d2a61f0c4"  # the email block's secret, likewise
BLOCK = "custom-webhook/test-phone"
WAIT_FOR_MESSAGES_S = 120.0
SETTLE_S = 8.0  # after the last event is stored, for a message that should not come

_STEPS = """
import asyncio, json, sys
from flows.health_sweep import health_sweep
from flows.recover_node import FlowRecoveryPolicy, recover_node
policy = FlowRecoveryPolicy(max_attempts=1, cooldown_s=0, wait_ssh_s=1, wait_docker_s=1, wait_serving_s=60,
                            poll_s=0.3, lock_wait_s=5)
for step in json.loads(sys.argv[1]):
    if step[0] == "sweep":
        asyncio.run(health_sweep(inventory=step[1]))
    else:
        state = recover_node(node=step[1], inventory=step[2], policy=policy, return_state=True)
        print(step[1], state.message, flush=True)
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver(token=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def phone_block(own_prefect_server: PrefectServer, receiver: Receiver) -> str:
    """Prefect's generic webhook block, posting JSON to the receiver with the token from its secrets."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="homelab test phone",
        url=f"{receiver.url}/alerts",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        headers={"Authorization": "Bearer {{token}}"},
        secrets={"token": TOKEN},
    )
    with open_client(own_prefect_server.api_url):
        block.save(BLOCK.split("/")[1], overwrite=True)
    return BLOCK


class _Sink:
    """An SMTP sink on 127.0.0.1 that takes mail only after AUTH as alerts/SMTP_PASSWORD."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not session.authenticated:
            return "530 authentication required"
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.mails.append((envelope.mail_from or "", list(envelope.rcpt_tos), content.decode(errors="replace")))
        return "250 OK"


def _login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"alerts", SMTP_PASSWORD.encode())
    return AuthResult(success=ok)


@pytest.fixture(scope="module")
def smtp_sink() -> Iterator[tuple[int, _Sink]]:
    sink = _Sink()
    port = free_port()
    # AUTH without TLS on loopback only: the sink has no certificate, and nothing leaves 127.0.0.1.
    controller = Controller(sink, hostname=LOOPBACK, port=port, authenticator=_login, auth_require_tls=False)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


def _sync(server: PrefectServer, notify: Notify | None) -> Any:
    with open_client(server.api_url) as client:
        return sync_alerts(client, notify, "cluster.yaml")


def _automations(server: PrefectServer) -> list[dict[str, Any]]:
    answer = httpx.post(f"{server.api_url}/automations/filter", json={}, timeout=10)
    answer.raise_for_status()
    return [a for a in answer.json() if a["name"].startswith("homelab-alert-")]


def test_sync_keeps_one_automation_per_kind_and_follows_notify(
    own_prefect_server: PrefectServer, phone_block: str
) -> None:
    notify = Notify(blocks=[phone_block], min_repeat="30m")
    first = _sync(own_prefect_server, notify)
    again = _sync(own_prefect_server, notify)
    kinds = sorted(["homelab-alert-node-down", "homelab-alert-recovery-failed", "homelab-alert-recovered"])
    assert sorted(first.created + first.updated) == kinds and first.problems == []
    assert sorted(again.updated) == kinds and again.created == [] and again.removed == []
    automations = _automations(own_prefect_server)
    assert sorted(a["name"] for a in automations) == kinds
    down = next(a for a in automations if a["name"] == "homelab-alert-node-down")
    assert down["trigger"]["expect"] == ["homelab.node.down"]
    assert down["trigger"]["match"] == {"prefect.resource.id": "homelab.node.*", "homelab.alert": "send"}
    assert down["trigger"]["within"] == 1800.0 and down["trigger"]["for_each"] == ["prefect.resource.id"]
    assert [a["type"] for a in down["actions"]] == ["send-notification"]

    fewer = _sync(own_prefect_server, Notify(blocks=[phone_block], events=["recovered"]))
    assert sorted(fewer.removed) == ["homelab-alert-node-down", "homelab-alert-recovery-failed"]
    gone = _sync(own_prefect_server, None)
    assert gone.removed == ["homelab-alert-recovered"] and _automations(own_prefect_server) == []

    missing = _sync(own_prefect_server, Notify(blocks=[phone_block, "slack-webhook/nobody"]))
    assert missing.problems == [
        "cluster.yaml: notify.blocks[1]: the Prefect server has no slack-webhook block named 'nobody'; "
        "create it in the Prefect UI (Blocks, +) or in Python, e.g. "
        "CustomWebhookNotificationBlock(name=..., url=..., json_data=...).save(NAME), then run `homelab up` again"
    ]
    assert len(_automations(own_prefect_server)) == 3  # the block that exists still gets its messages


def _run_steps(server: PrefectServer, steps: list[tuple[str, ...]], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The flows in another process, as a worker runs them."""
    env = {**os.environ, **server.env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _STEPS, json.dumps(steps)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _node(name: str, tier: str, url: str, wake: dict[str, Any] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name, "tier": tier, "host": LOOPBACK}
    node["endpoints"] = [{"name": "llm", "kind": "ollama", "url": url}]
    if wake:
        node["wake"] = wake
    return node


def _cluster(path: Path, nodes: list[dict[str, Any]], notify: dict[str, Any]) -> str:
    data = {"name": "alerts", "nodes": nodes, "history": {"url": "sqlite:///history.db"}, "notify": notify}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _wait_for(receiver: Receiver, count: int) -> list[Message]:
    deadline = time.monotonic() + WAIT_FOR_MESSAGES_S
    while time.monotonic() < deadline and len(receiver.messages()) < count:
        time.sleep(0.5)
    return receiver.messages()


def _count(server: PrefectServer, event: str) -> int:
    """How many `event`s the server has stored."""
    body = {"filter": {"event": {"name": [event]}}, "limit": 50}
    answer = httpx.post(f"{server.api_url}/events/filter", json=body, timeout=10)
    answer.raise_for_status()
    return int(answer.json()["total"])


def _api_text(server: PrefectServer) -> str:
    """What anyone who can read the Prefect API sees: automations, events, runs, logs, block documents."""
    reads = [
        ("automations/filter", {}),
        ("events/filter", {"filter": {"event": {"prefix": ["homelab."]}}, "limit": 50}),
        ("events/filter", {"filter": {"event": {"prefix": ["prefect.automation."]}}, "limit": 50}),
        ("events/filter", {"filter": {"event": {"prefix": ["prefect.block-document."]}}, "limit": 50}),
        ("flow_runs/filter", {}),
        ("logs/filter", {}),
        ("block_documents/filter", {}),
        ("artifacts/filter", {}),
    ]
    return "".join(httpx.post(f"{server.api_url}/{path}", json=body, timeout=10).text for path, body in reads)


def test_one_message_per_incident_and_the_recovery_after_it(
    own_prefect_server: PrefectServer,
    phone_block: str,
    receiver: Receiver,
    ollama_standin: StandInServer,
    tmp_path: Path,
) -> None:
    notify = {"blocks": [phone_block], "min_repeat": "30m"}
    _sync(own_prefect_server, Notify.model_validate(notify))
    before = len(receiver.messages())
    wake_port = free_port()
    wake = {
        "command": f"{sys.executable} -m homelab_app.ollama_standin --port {wake_port}",
        "detach": True,
        "command_timeout_s": 90,
    }
    dead = f"http://{LOOPBACK}:{free_port()}"
    nodes = [
        _node("sleepy", "gpu", f"http://{LOOPBACK}:{wake_port}", wake),  # woken by its recovery
        _node("handsneeded", "nas", dead),  # no way to wake: its recovery fails
        _node("flappy", "cpu", dead),  # down, back, down again within min_repeat
    ]
    down = _cluster(tmp_path / "down.yaml", nodes, notify)
    flappy_up = _cluster(tmp_path / "up.yaml", [*nodes[:2], _node("flappy", "cpu", ollama_standin.url)], notify)
    steps = [
        ("sweep", down),  # three nodes down: three messages
        ("sweep", down),  # still down: nothing new
        ("recover", "sleepy", down),  # woken: recovered, with the time to recover
        ("recover", "handsneeded", down),  # nothing to do it with: recovery failed
        ("sweep", flappy_up),  # flappy back
        ("sweep", down),  # flappy down again within min_repeat: no second message
    ]
    done = _run_steps(own_prefect_server, steps, tmp_path)
    assert "sleepy Completed" in done.stdout or "sleepy node sleepy: RECOVERED" in done.stdout, done.stdout

    _wait_for(receiver, before + 5)
    # Every sweep's down events stored (3, 3, then sleepy and handsneeded, then 3), then a while
    # longer: a message that should not come would have come by then.
    deadline = time.monotonic() + WAIT_FOR_MESSAGES_S
    while time.monotonic() < deadline and _count(own_prefect_server, "homelab.node.down") < 3 + 3 + 2 + 3:
        time.sleep(0.5)
    assert _count(own_prefect_server, "homelab.node.down") == 3 + 3 + 2 + 3
    time.sleep(SETTLE_S)
    messages = receiver.messages()[before:]
    texts = [m.text() for m in messages]
    subjects = [m.body["subject"] for m in messages if isinstance(m.body, dict)]
    assert len(messages) == 5, texts
    assert sorted(subjects[:3]) == [
        "homelab: node flappy is down",
        "homelab: node handsneeded is down",
        "homelab: node sleepy is down",
    ]
    assert sorted(subjects[3:]) == ["homelab: node handsneeded was not recovered", "homelab: node sleepy recovered"]
    recovered = next(m.text() for m in messages if "sleepy recovered" in m.text())
    assert "Node sleepy (tier gpu) serves again: RECOVERED, time to recover " in recovered
    assert "Flow run: http://" in recovered and "/runs/flow-run/" in recovered
    failed = next(m.text() for m in messages if "handsneeded was not recovered" in m.text())
    assert "ended FAILED after 1 attempt(s)" in failed and "needs hands" in failed
    down_text = next(m.text() for m in messages if "sleepy is down" in m.text())
    assert "Node sleepy (tier gpu) is down at " in down_text and "all 1 endpoints failed" in down_text

    # The block's token went to the receiver (it refuses a POST without) and nowhere else.
    seen = _api_text(own_prefect_server) + done.stdout + done.stderr
    seen += (own_prefect_server.home / "server.log").read_text(errors="replace")
    assert TOKEN not in seen


def test_email_and_ntfy_through_apprise_urls_with_their_secrets_only_in_the_blocks(
    own_prefect_server: PrefectServer, smtp_sink: tuple[int, _Sink], receiver: Receiver, tmp_path: Path
) -> None:
    from blocks import AppriseURL

    port, sink = smtp_sink
    mail = f"mailto://alerts:{SMTP_PASSWORD}@{LOOPBACK}:{port}?from=homelab@home.lan&to=owner@home.lan&mode=insecure"
    # Apprise's ntfy plugin publishes ntfy's JSON (topic, title, message) with the access token as
    # a bearer token: the receiver answers as an ntfy server that requires it.
    ntfy = f"ntfy://{receiver.url.removeprefix('http://')}/homelab-alerts?auth=token&token={TOKEN}"
    with open_client(own_prefect_server.api_url):
        AppriseURL(url=mail).save("test-email", overwrite=True)
        AppriseURL(url=ntfy).save("test-ntfy", overwrite=True)
    notify = {"blocks": ["apprise-url/test-email", "apprise-url/test-ntfy"], "events": ["node_down"]}
    assert _sync(own_prefect_server, Notify.model_validate(notify)).problems == []
    before = len(receiver.messages())

    cluster = _cluster(tmp_path / "mail.yaml", [_node("mailbox", "nas", f"http://{LOOPBACK}:{free_port()}")], notify)
    done = _run_steps(own_prefect_server, [("sweep", cluster), ("sweep", cluster)], tmp_path)
    deadline = time.monotonic() + WAIT_FOR_MESSAGES_S
    while time.monotonic() < deadline and (not sink.mails or len(receiver.messages()) == before):
        time.sleep(0.5)
    time.sleep(SETTLE_S)
    assert len(sink.mails) == 1, sink.mails
    sender, to, content = sink.mails[0]
    assert (sender, to) == ("homelab@home.lan", ["owner@home.lan"])
    assert "Subject: homelab: node mailbox is down" in content
    [published] = receiver.messages()[before:]
    assert isinstance(published.body, dict)
    assert published.body["topic"] == "homelab-alerts"
    assert published.body["title"] == "homelab: node mailbox is down"
    assert "Node mailbox (tier nas) is down at " in published.body["message"]

    seen = _api_text(own_prefect_server) + done.stdout + done.stderr
    seen += (own_prefect_server.home / "server.log").read_text(errors="replace")
    assert SMTP_PASSWORD not in seen and TOKEN not in seen
