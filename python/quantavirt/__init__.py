"""QuantaVirt: a virtual machine monitor for Linux/KVM built around post-quantum cryptography."""

from typing import Any

from quantavirt.errors import QVError

__version__ = "0.1.0"

__all__ = ["QVError", "VM", "__version__"]


def __getattr__(name: str) -> Any:
    # quantavirt.VM without loading the engine on every `import quantavirt`.
    if name == "VM":
        from quantavirt.vm import VM

        return VM
    raise AttributeError(f"module 'quantavirt' has no attribute {name!r}")
