"""Post-quantum cryptography: ML-KEM (FIPS 203) and ML-DSA (FIPS 204).

    kem = quantavirt.pqc.KEM("ML-KEM-768", backend="auto")
    sig = quantavirt.pqc.Signature("ML-DSA-65", backend="auto")
"""

from __future__ import annotations

__all__: list[str] = []

try:  # each algorithm family lives in its own module
    from quantavirt.pqc.kem import KEM  # noqa: F401

    __all__.append("KEM")
except ImportError:  # pragma: no cover - during bring-up only
    pass
try:
    from quantavirt.pqc.signature import Signature  # noqa: F401

    __all__.append("Signature")
except ImportError:  # pragma: no cover - during bring-up only
    pass
