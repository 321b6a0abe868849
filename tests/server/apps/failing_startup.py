"""An app whose startup hook raises: the server must exit 3, once, with one line."""
from __future__ import annotations

from cyserve import App

app = App()


@app.on_startup
async def connect() -> None:
    raise ConnectionRefusedError("database down")
