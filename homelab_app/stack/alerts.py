"""The alert automations on the Prefect server: created, updated or removed to match the cluster file's `notify:`.

`homelab up` calls `sync_alerts` after deploying. What each automation is comes from
`homelab.alerts.alert_automations` (plain data); here it becomes Prefect's own `AutomationCore`
with an `EventTrigger` and one `SendNotification` action per block. Idempotent: an automation
is found by its name (`homelab-alert-KIND`), updated in place, and duplicates or kinds no longer
asked for are deleted; without a `notify:` section every `homelab-alert-*` automation goes.

A named block the server lacks is a problem reported, not an error: with the embedded server
the owner can create blocks only once `homelab up` has started it, and the rerun of `homelab up`
that follows creates the automations. Without any usable block there are no automations.

Blocks are read without their secrets (`include_secrets=False`): only the id is needed here,
and the webhook URL or token never enters this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from pydantic import BaseModel, Field

from homelab.alerts import AUTOMATION_PREFIX, AlertAutomation, Notify, alert_automations

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore

__all__ = ["AlertSync", "sync_alerts"]

_HOW_TO_CREATE = (
    "create it in the Prefect UI (Blocks, +) or in Python, e.g. "
    "CustomWebhookNotificationBlock(name=..., url=..., json_data=...).save(NAME)"
)


class AlertSync(BaseModel):
    """What `sync_alerts` did, by automation name."""

    created: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    problems: list[str] = Field(default_factory=list, description="FILE: notify.blocks[N]: what is wrong")


def _block_ids(client: SyncPrefectClient, notify: Notify, where: str, problems: list[str]) -> dict[str, UUID]:
    """Each usable `slug/name` of `notify.blocks` to its block document id; the rest into `problems`."""
    from prefect.exceptions import ObjectNotFound

    ids: dict[str, UUID] = {}
    for index, ref in enumerate(notify.blocks):
        slug, name = ref.split("/", 1)
        try:
            document = client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=False)
        except ObjectNotFound:
            problems.append(
                f"{where}: notify.blocks[{index}]: the Prefect server has no {slug} block named {name!r}; "
                f"{_HOW_TO_CREATE}, then run `homelab up` again"
            )
            continue
        capabilities = document.block_schema.capabilities if document.block_schema else []
        if "notify" not in capabilities:
            problems.append(f"{where}: notify.blocks[{index}]: {ref} is not a notification block (it cannot notify)")
            continue
        ids[ref] = document.id
    return ids


def _core(spec: AlertAutomation, ids: dict[str, UUID]) -> AutomationCore:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    trigger = EventTrigger(
        match=spec.match,
        expect={spec.event},
        for_each={"prefect.resource.id"},
        posture=Posture.Reactive,
        threshold=1,
        within=spec.within,
    )
    actions = [
        SendNotification(block_document_id=ids[ref], subject=spec.subject, body=spec.body)
        for ref in spec.blocks
        if ref in ids
    ]
    return AutomationCore(
        name=spec.name,
        description=spec.description,
        enabled=True,
        trigger=trigger,
        actions=actions,
    )


def sync_alerts(client: SyncPrefectClient, notify: Notify | None, where: str = "cluster file") -> AlertSync:
    """Make the server's `homelab-alert-*` automations exactly those `notify` asks for.

    Args:
        client: Prefect's client for the stack's API.
        notify: the cluster file's `notify:` section; None removes every alert automation.
        where: the cluster file's path, for error messages.

    Returns:
        the automations created, updated and removed, and the blocks that could not be used.
    """
    result = AlertSync()
    ids = _block_ids(client, notify, where, result.problems) if notify is not None else {}
    wanted = alert_automations(notify) if ids else []
    existing = [a for a in client.read_automations() if a.name.startswith(AUTOMATION_PREFIX)]
    kept: set[UUID] = set()
    for spec in wanted:
        core = _core(spec, ids)
        same = [a for a in existing if a.name == spec.name]
        if same:
            client.update_automation(same[0].id, core)
            kept.add(same[0].id)
            result.updated.append(spec.name)
        else:
            client.create_automation(core)
            result.created.append(spec.name)
    for stale in (a for a in existing if a.id not in kept):
        client.delete_automation(stale.id)
        result.removed.append(stale.name)
    return result
