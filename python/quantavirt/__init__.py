"""QuantaVirt: a virtual machine monitor for Linux/KVM built around post-quantum cryptography."""

from quantavirt.errors import QVError

__version__ = "0.1.0"

__all__ = ["QVError", "__version__"]
