"""File upload: a form at / and a handler that stores the files, streaming, without holding them
in memory (parts past 1 MiB are spooled to disk while the body arrives).

    python examples/upload.py             # serves http://127.0.0.1:8000
    curl -F note=hi -F file=@README.md http://127.0.0.1:8000/upload

Files land in $UPLOAD_DIR (default: a cyserve-uploads folder in the temp directory) under a
random prefix plus a sanitised name: the client's file name is never trusted as a path.
"""
import asyncio
import hashlib
import os
import re
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App, Limits  # noqa: E402
from cyserve.multipart import FormLimits, UploadFile  # noqa: E402
from cyserve.response import HTMLResponse  # noqa: E402

UPLOAD_DIR = os.environ.get("UPLOAD_DIR") or os.path.join(tempfile.gettempdir(), "cyserve-uploads")
MAX_UPLOAD_BYTES = 64 * 1024 * 1024

app = App(limits=Limits(max_body_bytes=MAX_UPLOAD_BYTES + 1024 * 1024))
FORM_LIMITS = FormLimits(max_parts=20, max_file_bytes=MAX_UPLOAD_BYTES)

PAGE = """<!doctype html>
<meta charset="utf-8"><title>cyserve upload</title>
<form method="post" action="/upload" enctype="multipart/form-data">
  <p><input name="note" placeholder="a note"></p>
  <p><input type="file" name="file" multiple></p>
  <p><button>Upload</button></p>
</form>
"""


@app.get("/")
async def index(request):
    return HTMLResponse(PAGE)


def safe_name(filename: str) -> str:
    base = os.path.basename(filename.replace("\\", "/")) or "upload"
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:100].lstrip(".") or "upload"


def sha256_of(upload: UploadFile) -> str:
    digest = hashlib.sha256()
    upload.file.seek(0)
    for block in iter(lambda: upload.file.read(256 * 1024), b""):
        digest.update(block)
    return digest.hexdigest()


@app.post("/upload")
async def upload(request):
    form = await request.form(FORM_LIMITS)
    os.makedirs(UPLOAD_DIR, exist_ok=True)
    stored = []
    loop = asyncio.get_running_loop()
    try:
        for item in form.getlist("file"):
            if not isinstance(item, UploadFile) or not item.filename:
                continue  # an empty file input sends a part without a file name
            path = os.path.join(UPLOAD_DIR, f"{uuid.uuid4().hex[:12]}-{safe_name(item.filename)}")
            size = await item.save(path)
            digest = await loop.run_in_executor(None, sha256_of, item)  # file I/O off the loop
            stored.append({"name": item.filename, "size": size, "sha256": digest,
                           "stored_as": os.path.basename(path)})
    finally:
        form.close()
    return {"note": form.get("note", ""), "files": stored}


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
