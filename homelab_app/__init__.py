"""homelab's application layer: the `homelab` command, the Prefect stack, the demo, the Ollama stand-in.

Beside the core (`homelab/`), as pyinfra keeps `pyinfra_cli/` beside `pyinfra/`: here Prefect,
typer and rich are normal imports. The core never imports this package.
"""

__all__: list[str] = []
