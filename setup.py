"""The optional compiled parts of crossmod (everything else is in pyproject.toml).

1. The scanner of `crossmod trace` (`crossmod.trace._scan`) and the state digest of the
   compact stores (`crossmod.machine._digest`), in C, `optional=True`: where no C compiler
   is found the install still succeeds and the package runs the pure-Python references
   (crossmod/trace/speedups.py, crossmod/machine/digest.py).
2. The checker's engine -- the machine's step and the explorer's loop, the modules listed in
   `crossmod/engine_modules.txt` -- compiled with mypyc from the very Python sources that
   stay the reference: `CROSSMOD_ENGINE=python` runs them interpreted, and crossmod/_engine.py
   falls back to them (saying so) when the compiled modules are missing or were built from
   other sources. `CROSSMOD_COMPILE=0` at install time skips this step.
"""

import hashlib
import json
import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
FLAGS = ["-O2", "-Wall", "-Wno-unused-parameter"]
ext_modules = [Extension("crossmod.trace._scan", ["src/crossmod/trace/_scan.c"],
                         extra_compile_args=FLAGS, optional=True),
               Extension("crossmod.machine._digest", ["src/crossmod/machine/_digest.c"],
                         extra_compile_args=FLAGS, optional=True)]


def _engine_extensions() -> list:
    if os.environ.get("CROSSMOD_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("crossmod: mypyc not available, the checker's engine stays interpreted")
        return []
    listed = (HERE / "src/crossmod/engine_modules.txt").read_text().split()
    paths = [f"src/crossmod/{m.replace('.', '/')}.py" for m in listed]
    # what the compiled modules are built from: crossmod/_engine.py runs them only while
    # the sources beside them still match
    stamp = {f"crossmod.{m}": hashlib.sha256((HERE / p).read_bytes()).hexdigest()
             for m, p in zip(listed, paths, strict=True)}
    (HERE / "src/crossmod/_engine_stamp.json").write_text(json.dumps(stamp, indent=1) + "\n")
    # mypy reads [tool.mypy] from pyproject.toml; the group's shared library lives inside
    # the package (crossmod/_engine__mypyc), where an editable install finds it
    try:
        exts = mypycify(paths, opt_level="3", group_name="crossmod._engine")
    except (Exception, SystemExit) as e:  # a mypy that rejects the sources: stay interpreted
        print(f"crossmod: mypyc could not compile the engine ({e}); it stays interpreted")
        return []
    for e in exts:
        e.optional = True
    return exts


setup(ext_modules=ext_modules + _engine_extensions())
