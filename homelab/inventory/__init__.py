"""The cluster file (`cluster.yaml`): the single description of a homelab cluster.

`models` holds the schema, `load` reads a file and reports every problem with its line.
"""

from homelab.inventory.load import load_inventory, load_inventory_with_notes, parse_inventory
from homelab.inventory.models import (
    GPU,
    Capability,
    Category,
    Container,
    Defaults,
    DockerSettings,
    Endpoint,
    EndpointKind,
    Gateway,
    History,
    Inventory,
    Node,
    OllamaDeploy,
    ProbeOverride,
    ProbeSettings,
    SecretRef,
    ServedModel,
    SSHSettings,
    VaultRef,
    Wake,
)

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
