"""``App.run(workers=2)`` from a user's script: the App object itself is forked (no import
string).  argv[1]: a JSON object of extra keywords."""
from __future__ import annotations

import json
import os
import sys

from cyserve import App, Request, Response

app = App()


@app.get("/pid")
async def pid(request: Request) -> Response:
    return Response(str(os.getpid()).encode(), content_type="text/plain")


if __name__ == "__main__":
    app.run(port=0, **json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
