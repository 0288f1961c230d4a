"""The LiteLLM gateway: its config generated from the cluster file, a cluster file imported
from an existing LiteLLM config, and the hook that auto-routes `model: auto` inside the proxy.

`config` and `importer` are plain Python; `autoroute` imports LiteLLM only when the proxy
asks for its handler, so homelab works without the `gateway` extra installed.
"""

__all__: list[str] = []
