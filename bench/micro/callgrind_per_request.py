"""Instructions per request of the server, counted by callgrind (repeatable on a noisy machine).

    python bench/micro/callgrind_per_request.py [plaintext|json] [--tree PATH]

Runs ``protocol_loop.py`` under ``valgrind --tool=callgrind`` twice, with two request counts, and
reports the difference of the instruction totals divided by the difference of the counts: start-up,
imports and the warm-up cancel out, leaving what one more request costs (parse, app, response).
``--tree`` measures another checkout with the same ``bench/micro/protocol_loop.py`` (e.g. the
commit before a change), so before and after are counted by the same script.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SMALL, LARGE = 2_000, 12_000


def instructions(tree: str, which: str, rounds: int) -> int:
    script = os.path.join(tree, "bench", "micro", "protocol_loop.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, script, which, "--rounds", str(rounds)],
            cwd=tree, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        if proc.returncode != 0:
            raise SystemExit(f"callgrind run failed:\n{proc.stderr[-2000:]}")
        match = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
        if match is None:
            raise SystemExit(f"no instruction total in callgrind's output:\n{proc.stderr[-2000:]}")
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="plaintext", choices=("plaintext", "json", "asgi-plaintext", "asgi-json"))
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), help="checkout to measure (default: this one)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    small = instructions(args.tree, args.which, SMALL)
    large = instructions(args.tree, args.which, LARGE)
    per_request = (large - small) / (LARGE - SMALL)
    print(f"{args.which}: {per_request:,.0f} instructions per request ({args.tree})")


if __name__ == "__main__":
    main()
