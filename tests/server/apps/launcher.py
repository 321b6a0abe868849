"""``python launcher.py '<json>'``: ``launch(RunConfig(**json))`` and exit with its status —
the CLI's path without its argument parsing (tests/cli covers that)."""
from __future__ import annotations

import json
import sys

from cyserve.config import RunConfig
from cyserve.server.workers import launch

_TUPLES = ("reload_dirs", "reload_includes", "reload_excludes")

if __name__ == "__main__":
    options = json.loads(sys.argv[1])
    for name in _TUPLES:
        if name in options:
            options[name] = tuple(options[name])
    sys.exit(launch(RunConfig(**options)))
