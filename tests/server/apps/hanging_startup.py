"""An app whose startup hook never finishes: only a forced stop (a second SIGINT) ends it."""
from __future__ import annotations

import asyncio

from cyserve import App

app = App()


@app.on_startup
async def wait_forever() -> None:
    print("startup hook waiting", flush=True)
    await asyncio.sleep(3600)
