"""Where QuantaVirt keeps its state: ``$QUANTAVIRT_HOME`` (default /var/lib/quantavirt).

    vms/<name>/            one directory per created VM
    networks/<name>.json   networks defined by QuantaVirt
    images/                disk images made by ``quantavirt storage create``
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "/var/lib/quantavirt"


def home() -> Path:
    return Path(os.environ.get("QUANTAVIRT_HOME") or DEFAULT_HOME)


def vms_dir() -> Path:
    return home() / "vms"


def vm_dir(name: str) -> Path:
    """A VM's directory; ``name`` must already be a valid VM name (no '/', not '.'/'..')."""
    return vms_dir() / name


def networks_dir() -> Path:
    return home() / "networks"


def network_file(name: str) -> Path:
    return networks_dir() / f"{name}.json"


def images_dir() -> Path:
    return home() / "images"
