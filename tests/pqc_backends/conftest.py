"""Fixtures of the PQC backend tests: the QUAC 100 test device of tests/quac100."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quac100"))

from quac100_simdev import card, sim_binary, start_sim  # noqa: E402, F401
