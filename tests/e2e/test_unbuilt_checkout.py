"""A checkout whose Cython extensions were never built says so, and how to build them, instead of a
bare ModuleNotFoundError deep inside the import."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_an_unbuilt_checkout_names_the_build_command(tmp_path: Path) -> None:
    # A copy of the package without the compiled modules: what a fresh clone looks like.
    shutil.copytree(ROOT / "cyserve", tmp_path / "cyserve",
                    ignore=shutil.ignore_patterns("*.so", "*.c", "*.html", "__pycache__"))
    done = subprocess.run([sys.executable, "-c", "import cyserve"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: cyserve's Cython extensions are not built"), done.stderr
    assert "pip install -e ." in last
