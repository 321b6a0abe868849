"""An SSE clock: the page at / shows the server's time, pushed once a second over /clock.

    python examples/sse_clock.py          # serves http://127.0.0.1:8000
    curl -N http://127.0.0.1:8000/clock   # the raw event stream

Each tick is an event of type ``tick`` with an increasing id: a browser that reconnects sends
``Last-Event-ID`` and the count carries on from there.  Closing the tab stops the producer.
"""
import asyncio
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App  # noqa: E402
from cyserve.response import HTMLResponse  # noqa: E402
from cyserve.sse import ServerSentEvent, SSEResponse  # noqa: E402

app = App()

PAGE = """<!doctype html>
<meta charset="utf-8"><title>cyserve SSE clock</title>
<h1 id="now">connecting…</h1>
<script>
  const source = new EventSource("/clock");
  source.addEventListener("tick", (e) => {
    document.getElementById("now").textContent = JSON.parse(e.data).time;
  });
</script>
"""


@app.get("/")
async def index(request):
    return HTMLResponse(PAGE)


@app.get("/clock")
async def clock(request):
    try:
        interval_s = min(max(float(request.query.get("interval", "1")), 0.01), 60.0)
        start = int(request.headers.get("last-event-id", "0"))
    except ValueError:
        return "interval and Last-Event-ID must be numbers\n", 400

    async def ticks():
        count = start
        while True:
            count += 1
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            yield ServerSentEvent({"time": now}, event="tick", id=str(count))
            await asyncio.sleep(interval_s)

    return SSEResponse(ticks(), ping_interval_s=15.0)


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
