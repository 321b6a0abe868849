"""Server-to-server streaming (after Blazeio's example): a large download goes straight into an
S3-compatible PUT, chunk by chunk, never held in memory.

    python examples/s3_stream_upload.py --source http://host/big.bin \\
        --endpoint http://127.0.0.1:5000 --bucket my-bucket --key big.bin

    python examples/s3_stream_upload.py --demo --endpoint http://127.0.0.1:5000 --size-mb 256

The download's body is iterated as it arrives (``iter_raw()``: the bytes as sent, so the
Content-Length we forward is the one we received) and passed as the PUT's ``content``: the
cyserve client sends each piece as it comes and waits whenever the S3 side reads slower (the
upload's ``drain``), and the download's socket is paused whenever the upload waits (its read
water marks), so memory stays bounded whatever the size.

Requests are signed with AWS Signature Version 4 (written out below, no boto3), with the
``UNSIGNED-PAYLOAD`` content hash: the body can't be hashed before it is sent without buffering
it.  Credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (``test``/``test``
by default, which a local S3 such as moto's server accepts).

``--demo`` starts a local cyserve source serving ``--size-mb`` MiB of deterministic data, creates
the bucket, streams the object up, then checks it with a HEAD (size) and a streamed GET
(SHA-256), and prints one JSON line with the result and this process's peak RSS.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import resource
import sys
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cyserve  # noqa: E402
from cyserve.client import Client  # noqa: E402

UNSIGNED = "UNSIGNED-PAYLOAD"


# ---------------------------------------------------------------------- AWS Signature V4
def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def sign_v4(method: str, url: str, headers: dict[str, str], *, access_key: str, secret_key: str,
            region: str, service: str = "s3", payload_hash: str = UNSIGNED,
            now: dt.datetime | None = None) -> dict[str, str]:
    """Return ``headers`` plus Host, X-Amz-Date, X-Amz-Content-Sha256 and Authorization.

    Canonical request (AWS SigV4): method, the URI-encoded path (S3: each segment encoded once),
    the sorted encoded query, the sorted lower-case headers with trimmed values, the signed
    header names, and the payload hash; then the string to sign over the credential scope, and
    the HMAC chain date -> region -> service -> "aws4_request".
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    parts = urlsplit(url)
    host = parts.netloc
    out = dict(headers)
    out["Host"] = host
    out["X-Amz-Date"] = amz_date
    out["X-Amz-Content-Sha256"] = payload_hash
    canonical_headers = sorted((k.lower(), " ".join(str(v).split())) for k, v in out.items())
    signed_headers = ";".join(k for k, _ in canonical_headers)
    query = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                   for k, _, v in (p.partition("=") for p in parts.query.split("&") if p))
    canonical_request = "\n".join([
        method,
        quote(parts.path or "/", safe="/-_.~"),
        "&".join(f"{k}={v}" for k, v in query),
        "".join(f"{k}:{v}\n" for k, v in canonical_headers),
        signed_headers,
        payload_hash,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", amz_date, scope,
        hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
    ])
    key = _hmac(("AWS4" + secret_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    del out["Host"]   # the client sends Host itself (the same value)
    return out


class S3:
    """Just enough of S3's REST API (path-style URLs) for this example."""

    def __init__(self, client: Client, endpoint: str, region: str, access_key: str,
                 secret_key: str) -> None:
        self.client = client
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key

    def url(self, bucket: str, key: str = "") -> str:
        return f"{self.endpoint}/{bucket}" + (f"/{quote(key, safe='/')}" if key else "")

    def sign(self, method: str, url: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        return sign_v4(method, url, headers or {}, access_key=self.access_key,
                       secret_key=self.secret_key, region=self.region)

    async def create_bucket(self, bucket: str) -> None:
        url = self.url(bucket)
        resp = await self.client.put(url, headers=self.sign("PUT", url, {"Content-Length": "0"}))
        if resp.status not in (200, 409):   # 409: it exists already
            resp.raise_for_status()

    async def put_stream(self, bucket: str, key: str, chunks: Any, length: int,
                         content_type: str = "application/octet-stream") -> Any:
        url = self.url(bucket, key)
        headers = self.sign("PUT", url, {"Content-Length": str(length),
                                         "Content-Type": content_type})
        resp = await self.client.put(url, content=chunks, headers=headers)
        return resp.raise_for_status()

    async def head(self, bucket: str, key: str) -> Any:
        url = self.url(bucket, key)
        return (await self.client.head(url, headers=self.sign("HEAD", url))).raise_for_status()

    def stream_get(self, bucket: str, key: str) -> Any:
        url = self.url(bucket, key)
        return self.client.stream("GET", url, headers=self.sign("GET", url))


async def stream_to_s3(client: Client, s3: S3, source_url: str, bucket: str, key: str) -> int:
    """GET ``source_url`` and PUT its body to ``bucket/key`` as it arrives; return the size."""
    async with client.stream("GET", source_url, headers={"Accept-Encoding": "identity"}) as src:
        src.raise_for_status()
        length = src.headers.get("content-length")
        if length is None:
            raise SystemExit("the source sent no Content-Length: a single S3 PUT needs one "
                             "(use a multipart upload for streams of unknown length)")
        await s3.put_stream(bucket, key, src.iter_raw(), int(length),
                            src.headers.get("content-type") or "application/octet-stream")
        return int(length)


# ---------------------------------------------------------------------- --demo
_BLOCK = hashlib.sha256(b"cyserve").digest() * (1024 * 1024 // 32)   # 1 MiB, deterministic


def demo_source(size_mb: int) -> cyserve.App:
    app = cyserve.App()

    @app.get("/big.bin")
    async def big(request):
        async def gen():
            for _ in range(size_mb * 4):
                yield _BLOCK[:256 * 1024]
        return cyserve.StreamResponse(gen(), content_type="application/octet-stream",
                                      content_length=size_mb * 1024 * 1024)
    return app


def demo_digest(size_mb: int) -> str:
    digest = hashlib.sha256()
    piece = _BLOCK[:256 * 1024]
    for _ in range(size_mb * 4):
        digest.update(piece)
    return digest.hexdigest()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    access_key = os.environ.get("AWS_ACCESS_KEY_ID", "test")
    secret_key = os.environ.get("AWS_SECRET_ACCESS_KEY", "test")
    server = None
    source = args.source
    if args.demo:
        server = await cyserve.serve(demo_source(args.size_mb), "127.0.0.1", 0)
        source = f"http://127.0.0.1:{server.port}/big.bin"
    try:
        async with Client(timeout=args.timeout) as client:
            s3 = S3(client, args.endpoint, args.region, access_key, secret_key)
            if args.demo:
                await s3.create_bucket(args.bucket)
            size = await stream_to_s3(client, s3, source, args.bucket, args.key)
            result: dict[str, Any] = {"ok": True, "bytes": size}
            if args.demo:
                head = await s3.head(args.bucket, args.key)
                digest = hashlib.sha256()
                async with s3.stream_get(args.bucket, args.key) as resp:
                    resp.raise_for_status()
                    async for chunk in resp.iter_bytes():
                        digest.update(chunk)
                result["head_length"] = int(head.headers.get("content-length", "-1"))
                result["sha256_match"] = digest.hexdigest() == demo_digest(args.size_mb)
                result["ok"] = result["head_length"] == size and result["sha256_match"]
    finally:
        if server is not None:
            await server.shutdown(timeout_s=2)
    result["max_rss_mb"] = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory.  Linux's VmHWM belongs to the process image, so a
    parent's pages from before exec() are not counted (``ru_maxrss`` counts them)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="S3 endpoint, e.g. http://127.0.0.1:5000")
    parser.add_argument("--bucket", default="cyserve-demo")
    parser.add_argument("--key", default="big.bin")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--source", help="URL to download from (not with --demo)")
    parser.add_argument("--demo", action="store_true", help="serve a local source and verify")
    parser.add_argument("--size-mb", type=int, default=256, help="--demo object size in MiB")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if not args.demo and not args.source:
        parser.error("give --source URL or --demo")
    from cyserve.server import new_event_loop
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        outcome = runner.run(main(args))
    print(json.dumps(outcome))
    sys.exit(0 if outcome["ok"] else 1)
