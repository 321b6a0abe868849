"""examples/s3_stream_upload.py: SigV4 against AWS's published vector, and a smoke run against a
local S3 (moto's server) that streams 64 MiB up, then checks it with a HEAD and a GET."""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import load_example

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "s3_stream_upload.py"


def test_sigv4_matches_the_aws_documentation_example():
    # "Example: GET Object" of the AWS S3 SigV4 documentation (header-based auth).
    headers = load_example("s3_stream_upload").sign_v4(
        "GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"},
        access_key="AKIAIOSFODNN7EXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        payload_hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        now=dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_streams_a_download_into_a_local_s3(tmp_path):
    pytest.importorskip("moto.server", reason="moto[server] is a test extra")
    moto = shutil.which("moto_server")
    port = _free_port()
    cmd = [moto] if moto else [sys.executable, "-m", "moto.server"]
    server = subprocess.Popen(cmd + ["-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        size_mb = 64
        out = subprocess.run(
            [sys.executable, str(EXAMPLE), "--demo", "--endpoint", f"http://127.0.0.1:{port}",
             "--bucket", "smoke", "--key", "dir/big object.bin", "--size-mb", str(size_mb)],
            capture_output=True, text=True, timeout=60,
            env=dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test"))
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["ok"] and result["bytes"] == size_mb * 1024 * 1024
        assert result["head_length"] == result["bytes"] and result["sha256_match"]
        # Streamed, not buffered: the whole process stays well under the object's size.
        assert result["max_rss_mb"] < size_mb, result
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
