"""Build the Cython core.

Every ``cyserve/_core/<package>/<name>.pyx`` becomes the extension
``cyserve._core.<package>.<name>`` (``io/stream.pyx`` -> ``cyserve._core.io.stream``); adding a core
module needs no change here.  Switches (environment):

- ``CYSERVE_ANNOTATE=1`` writes Cython's annotated ``.html`` next to each ``.pyx`` (never committed).
- ``CYSERVE_TRACE=1`` compiles with line tracing for coverage and profilers (slow; off by default).
- ``CYSERVE_DEBUG=1`` compiles with ``-O0 -g`` for gdb/valgrind.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

_ANNOTATE = os.environ.get("CYSERVE_ANNOTATE") == "1"
_TRACE = os.environ.get("CYSERVE_TRACE") == "1"
_DEBUG = os.environ.get("CYSERVE_DEBUG") == "1"


def _extensions() -> list:
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join("cyserve", "_core", "**", "*.pyx"), root_dir=here,
                               recursive=True))
    macros = [("CYTHON_TRACE_NOGIL", "1")] if _TRACE else []
    flags = ["-O0", "-g"] if _DEBUG else ["-O3"]
    return [
        Extension(
            os.path.splitext(src)[0].replace(os.sep, "."),
            [src],
            define_macros=macros,
            extra_compile_args=flags,
        )
        for src in sources
    ]


setup(
    ext_modules=cythonize(
        _extensions(),
        language_level=3,
        annotate=_ANNOTATE,
        compiler_directives={"linetrace": _TRACE, "embedsignature": True},
    ),
)
