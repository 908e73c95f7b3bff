"""The optional compiled scanner of `crossmod trace` (everything else is in pyproject.toml).

`optional=True`: where no C compiler is found the install still succeeds and the trace
readers run their pure-Python references (crossmod/trace/speedups.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("crossmod.trace._scan", ["src/crossmod/trace/_scan.c"],
                             extra_compile_args=["-O2", "-Wall", "-Wno-unused-parameter"],
                             optional=True)])
