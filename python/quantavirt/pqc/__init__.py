"""Post-quantum cryptography: ML-KEM (FIPS 203) and ML-DSA (FIPS 204).

    kem = quantavirt.pqc.KEM("ML-KEM-768", backend="auto")
    sig = quantavirt.pqc.Signature("ML-DSA-65", backend="auto")
"""

from __future__ import annotations

from quantavirt.pqc.kem import KEM
from quantavirt.pqc.signature import Signature

__all__ = ["KEM", "Signature"]
