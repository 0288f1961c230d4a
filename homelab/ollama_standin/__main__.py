"""`python -m homelab.ollama_standin`: serve the stand-in (NOT Ollama) on 127.0.0.1."""

from homelab.ollama_standin.server import main

raise SystemExit(main())
