"""Fixtures of the QUAC 100 tests: the FUSE test device (quac100_simdev.py; importable because
this folder is put on sys.path - pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quac100_simdev import card, sim_binary, start_sim  # noqa: E402, F401
