"""The cluster file (`cluster.yaml`): the single description of a homelab cluster.

`models` holds the node and endpoint tree (`container`, `settings` and `fields` the rest of
the schema), `load` reads a file and reports every problem with its line.
"""

from homelab.inventory.container import Container
from homelab.inventory.load import load_inventory, load_inventory_with_notes, parse_inventory
from homelab.inventory.models import (
    GPU,
    Capability,
    Category,
    DockerSettings,
    Endpoint,
    EndpointKind,
    Inventory,
    Node,
    OllamaDeploy,
    ServedModel,
    SSHSettings,
    Wake,
)
from homelab.inventory.settings import Defaults, Gateway, History, ProbeOverride, ProbeSettings, SecretRef, VaultRef

__all__ = [
    "GPU",
    "Capability",
    "Category",
    "Container",
    "Defaults",
    "DockerSettings",
    "Endpoint",
    "EndpointKind",
    "Gateway",
    "History",
    "Inventory",
    "Node",
    "OllamaDeploy",
    "ProbeOverride",
    "ProbeSettings",
    "SSHSettings",
    "SecretRef",
    "ServedModel",
    "VaultRef",
    "Wake",
    "load_inventory",
    "load_inventory_with_notes",
    "parse_inventory",
]
