"""The optional compiled parts (everything else is in pyproject.toml): the scanner of
`crossmod trace` and the state digest of the compact stores.

`optional=True`: where no C compiler is found the install still succeeds and the package
runs the pure-Python references (crossmod/trace/speedups.py, crossmod/machine/digest.py).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wno-unused-parameter"]

setup(ext_modules=[Extension("crossmod.trace._scan", ["src/crossmod/trace/_scan.c"],
                             extra_compile_args=FLAGS, optional=True),
                   Extension("crossmod.machine._digest", ["src/crossmod/machine/_digest.c"],
                             extra_compile_args=FLAGS, optional=True)])
