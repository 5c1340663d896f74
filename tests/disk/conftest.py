"""Block-layer tests: make the shared helpers (disk_helpers.py) importable under importlib mode."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
