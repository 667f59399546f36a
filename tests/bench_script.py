"""scripts/bench.py loaded as a module, for the tests of its report and its peers (it is a
script, and services/bench already owns the package name `bench`)."""

from __future__ import annotations

import importlib.util

from labstack import ROOT

_spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
