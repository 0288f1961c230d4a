"""The local demo cluster behind `homelab demo`: real servers on loopback, one node down on purpose.

`layout` decides the cluster's shape and ports, `cluster` prepares, starts, wakes and stops
it, `processes` records what runs so another command can stop it, `llama_build` finds or
builds llama-server with progress, and `wake` is the down node's wake command.
"""

__all__: list[str] = []
