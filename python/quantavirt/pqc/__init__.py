"""Post-quantum cryptography: ML-KEM (FIPS 203), ML-DSA (FIPS 204) and HKDF over SHA3-256.

    kem = quantavirt.pqc.KEM("ML-KEM-768", backend="auto")
    sig = quantavirt.pqc.Signature("ML-DSA-65", backend="auto")
    key = quantavirt.pqc.hkdf_sha3_256(ss, salt=b"...", info=b"...", length=32)
"""

from __future__ import annotations

from quantavirt.pqc.kdf import hkdf_sha3_256
from quantavirt.pqc.kem import KEM
from quantavirt.pqc.signature import Signature

__all__ = ["KEM", "Signature", "hkdf_sha3_256"]
