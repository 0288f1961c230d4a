"""Model sources: where a model file comes from (a path, https://, the Hugging Face hub), fetched and checked.

`spec` is the cluster file's `source:` (imported by the inventory, so it stays light); `fetch`
brings a node's sources into the local cache for a rollout, through `hub` (huggingface_hub)
or `https` (a Range-resumed httpx download), within `limits`, remembering what it hashed in
`checked`; `remote_header` reads a GGUF header with ranged requests for `homelab plan`,
without downloading the model.
"""

__all__: list[str] = []
