"""A static site with compression: serves examples/static_site/ at /.

    python examples/static_site.py          # http://127.0.0.1:8000
    curl -si --compressed http://127.0.0.1:8000/
    curl -si -H 'Range: bytes=0-99' http://127.0.0.1:8000/style.css

Files are sent in chunks with ETag/Last-Modified (304s), ranges and directory indexes;
text responses are compressed (br, gzip or deflate, as the client prefers).  Put ``name.br`` or
``name.gz`` beside a file (``brotli -k``, ``gzip -k``) and it is served instead of compressing
on the fly.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App  # noqa: E402
from cyserve.compression import Compression  # noqa: E402
from cyserve.static import StaticFiles  # noqa: E402

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static_site")

app = App()
site = StaticFiles(SITE, cache_control="public, max-age=60")
# A middleware maps a handler to a handler: here it wraps just the static route.
app.route("/{path:path}", methods=["GET", "HEAD"])(Compression(minimum_size=256)(site))


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
