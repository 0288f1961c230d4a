"""`python -m homelab_app.ollama_standin`: serve the stand-in (NOT Ollama) on 127.0.0.1."""

from homelab_app.ollama_standin.server import main

__all__: list[str] = []

if __name__ == "__main__":  # importing this module (as the boundary test does) serves nothing
    raise SystemExit(main())
