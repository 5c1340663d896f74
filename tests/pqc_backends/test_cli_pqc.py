"""`quantavirt pqc info` and `quantavirt bench pqc`, without a card and with the test device."""

from __future__ import annotations

import json

import pytest
from quac100_simdev import DEVICE_ENV, SimDevice

from quantavirt.cli import main

ALGORITHMS = ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_info_without_a_card(capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "/nonexistent/quac100_0")
    data = json.loads(_run(capsys, "pqc", "info", "--json"))
    assert data["auto_backend"] == "software"
    assert [a["algorithm"] for a in data["algorithms"]] == list(ALGORITHMS)
    for a in data["algorithms"]:
        assert a["backend"] == "software"
        assert a["code_path"] == a["software_code_path"] in ("portable", "AVX2", "AVX-512")
    assert data["quac100"]["devices"] == []
    assert data["liboqs"]["present"] == (data["liboqs"]["library"] is not None)
    text = _run(capsys, "pqc", "info")
    assert "auto backend: software" in text and "QUAC 100: no device answers" in text


def test_info_with_the_test_device(capsys: pytest.CaptureFixture[str], card: SimDevice) -> None:
    data = json.loads(_run(capsys, "pqc", "info", "--json"))
    assert data["auto_backend"] == "quac100"
    assert {a["code_path"] for a in data["algorithms"]} == {"card"}
    (dev,) = data["quac100"]["devices"]
    assert dev["path"] == card.path and dev["simulator"] is True
    assert dev["interface_version"] == 0x00010000 and dev["max_batch_size"] == 1024
    text = _run(capsys, "pqc", "info")
    assert f"QUAC 100 {card.path}" in text and "(simulator)" in text


def test_bench_quick_json(capsys: pytest.CaptureFixture[str], card: SimDevice) -> None:
    data = json.loads(_run(capsys, "bench", "pqc", "--quick", "--json"))
    assert data["quick"] is True and data["environment"]["auto_backend"] == "quac100"
    cells = {(r["algorithm"], r["operation"], r["backend"], r["batch"]): r
             for r in data["results"]}
    for alg in ALGORITHMS:
        ops = ("keygen", "encaps", "decaps") if "KEM" in alg else ("keygen", "sign", "verify")
        for op in ops:
            for backend in ("software", "quac100"):
                for batch in (1, 16):
                    r = cells[(alg, op, backend, batch)]
                    assert r["ops_per_s"] > 0
                    assert r["us_per_op"] == pytest.approx(1e6 / r["ops_per_s"])
            # OpenSSL (cryptography) has every algorithm but ML-KEM-512, at batch 1 only
            assert ((alg, op, "openssl", 1) in cells) == (alg != "ML-KEM-512")
            assert (alg, op, "openssl", 16) not in cells
    assert card.stats()["kem_encaps"] > 0  # the card really did the work


def test_bench_table_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(capsys, "bench", "pqc", "--quick", "--algorithm", "ML-KEM-768",
                "--backend", "software")
    lines = text.splitlines()
    assert "x1" in lines[1] and "x16" in lines[1]
    rows = [line.split() for line in lines[3:]]
    assert {(r[0], r[1], r[2]) for r in rows} == {
        ("ML-KEM-768", op, b) for op in ("keygen", "encaps", "decaps")
        for b in ("software", "openssl")}
    assert main(["bench", "pqc", "--quick", "--algorithm", "ML-KEM-2048"]) == 1
    assert "PQC_ERR_ALGORITHM" in capsys.readouterr().err
