"""The demo's alerts: Prefect's generic webhook block pointed at a loopback receiver.

The demo's cluster file names the block (`notify.blocks: [custom-webhook/homelab-demo]`). The demo's
Prefect server starts inside `homelab up` with a fresh database, so the demo saves the block from
`up`'s `before_deploy` hook: `up` then creates the automations before its worker can run a sweep,
and the first `homelab.node.down` of the down node has an automation to meet.

The receiver (`receiver.py`) runs inside the `homelab demo` process and prints each message as it
arrives; it ends with the command, after which the block's posts fail (Prefect records that on
the automation's events) until the next demo replaces it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from homelab_app.demo.layout import DEMO_BLOCK
from homelab_app.demo.receiver import Message, Receiver
from homelab_app.stack.prefect_api import open_client

__all__ = ["save_demo_block", "wait_for_alerts"]

_POLL_S = 0.5


def save_demo_block(api_url: str, receiver: Receiver) -> None:
    """Save the demo's webhook block: subject and body as JSON to `receiver`."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="homelab demo receiver",
        url=f"{receiver.url}/homelab-demo",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    with open_client(api_url):
        block.save(DEMO_BLOCK.split("/", 1)[1], overwrite=True)


def wait_for_alerts(receiver: Receiver, wanted: Callable[[list[Message]], bool], timeout_s: float) -> list[Message]:
    """The messages received once `wanted` says they are complete, or when `timeout_s` is over."""
    deadline = time.monotonic() + timeout_s
    while not wanted(receiver.messages()) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return receiver.messages()
