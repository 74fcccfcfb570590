"""Ingot's compiled parts: the HJ 212 codec's hot path (src/ingot/monitoring/hj212/_fastpath.c) and the matching
core's (src/ingot/market/engine/_corefast.c, and the native core _nativecore.c). Each has a Python counterpart that
stays the reference.

Everything else about the package is in pyproject.toml; `pip install -e .` (make test, make demo) builds it."""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("ingot.monitoring.hj212._fastpath", ["src/ingot/monitoring/hj212/_fastpath.c"],
              extra_compile_args=["-O2"]),
    Extension("ingot.market.engine._corefast", ["src/ingot/market/engine/_corefast.c"],
              extra_compile_args=["-O2"]),
    # The native core (native.py's NativeCore): its own C state and a batch entry point.
    Extension("ingot.market.engine._nativecore", ["src/ingot/market/engine/_nativecore.c"],
              extra_compile_args=["-O2"]),
])
