"""Backend names on the software classes: KEM / Signature serve "software" (and an "auto"
without a card) themselves; every other name goes through quantavirt.pqc.backend."""

from __future__ import annotations

import pytest

from quantavirt.errors import QVError
from quantavirt.pqc import KEM, Signature
from quantavirt.pqc.backend import BACKEND_NAMES, software_backend
from quantavirt.pqc.kem import BACKENDS


def test_one_list_of_backend_names() -> None:
    assert BACKENDS == BACKEND_NAMES == ("auto", "software", "quac100", "liboqs")


@pytest.mark.parametrize("cls, algorithm", [(KEM, "ML-KEM-768"), (Signature, "ML-DSA-65")])
def test_software_is_served_by_the_class_itself(cls: type, algorithm: str) -> None:
    obj = cls(algorithm, backend="software")
    assert type(obj) is cls
    assert obj.backend == "software"


@pytest.mark.parametrize("cls, algorithm", [(KEM, "ML-KEM-768"), (Signature, "ML-DSA-65")])
@pytest.mark.parametrize("backend", ["bogus", "", "SOFTWARE", 7, None])
def test_unknown_backend(cls: type, algorithm: str, backend: object) -> None:
    with pytest.raises(QVError) as excinfo:
        cls(algorithm, backend=backend)
    assert excinfo.value.name == "PQC_ERR_BACKEND"


@pytest.mark.parametrize("cls, algorithm", [(KEM, "ML-KEM-768"), (Signature, "ML-DSA-65")])
@pytest.mark.parametrize("backend", ["quac100", "liboqs"])
def test_subclass_cannot_claim_a_native_backend(cls: type, algorithm: str, backend: str) -> None:
    sub = type("Sub", (cls,), {})
    with pytest.raises(QVError) as excinfo:
        sub(algorithm, backend=backend)
    assert excinfo.value.name == "PQC_ERR_BACKEND"
    assert "served by" in excinfo.value.message


def test_software_backend_function() -> None:
    assert software_backend("auto") == "software"
    assert software_backend("software") == "software"
    with pytest.raises(QVError):
        software_backend(["software"])
