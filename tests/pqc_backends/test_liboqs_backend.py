"""The liboqs backend's run-time loading. No registry here ships liboqs, so the dlopen path is
exercised with a stand-in library exporting liboqs' entry points (fake_liboqs.c, computing
with the core's own code). The library is loaded once per process, so each case runs in a
fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from quac100_simdev import build_shared_object

from quantavirt.pqc.backend import liboqs_location

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def fake_liboqs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run(["gcc", "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no C compiler")
    return build_shared_object(HERE / "fake_liboqs.c",
                               tmp_path_factory.mktemp("oqs") / "liboqs.so.9")


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env}, check=False)


def test_absent_is_a_clean_backend_error() -> None:
    if liboqs_location() is not None:
        pytest.skip("a real liboqs is installed here")
    out = _python("""
        from quantavirt.errors import QVError
        from quantavirt.pqc import KEM, Signature
        for make in (lambda: KEM("ML-KEM-768", backend="liboqs"),
                     lambda: Signature("ML-DSA-65", backend="liboqs")):
            try:
                make()
            except QVError as e:
                print(e.name, e.message)
    """, QUANTAVIRT_LIBOQS="/nonexistent/liboqs.so")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["PQC_ERR_BACKEND liboqs shared library not found"] * 2


def test_loaded_with_dlopen(fake_liboqs: Path) -> None:
    out = _python("""
        import os
        from quantavirt.errors import QVError
        from quantavirt.pqc import KEM, Signature
        from quantavirt.pqc.backend import liboqs_location
        from quantavirt.cli.pqc import collect
        assert liboqs_location() == os.environ["QUANTAVIRT_LIBOQS"]
        assert collect()["liboqs"]["present"]
        for name in ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024"):
            oqs, sw = KEM(name, backend="liboqs"), KEM(name, backend="software")
            assert oqs.backend == "liboqs" and oqs.code_path == "liboqs"
            seed = os.urandom(64)
            pk, sk = oqs.keygen(seed=seed)
            assert (pk, sk) == sw.keygen(seed=seed)
            ct, ss = oqs.encaps(pk)
            assert sw.decaps(sk, ct) == ss == oqs.decaps(sk, ct)
            pks, sks = oqs.keygen_batch(3)
            cts, sss = oqs.encaps_batch(pks)
            assert (sw.decaps_batch(sks, cts) == sss).all()
        for name in ("ML-DSA-44", "ML-DSA-65", "ML-DSA-87"):
            oqs, sw = Signature(name, backend="liboqs"), Signature(name, backend="software")
            pk, sk = oqs.keygen()
            for ctx in (b"", b"context"):
                s = oqs.sign(sk, b"msg", ctx=ctx)
                assert sw.verify(pk, b"msg", s, ctx=ctx)
                assert oqs.verify(pk, b"msg", sw.sign(sk, b"msg", ctx=ctx), ctx=ctx)
                assert not oqs.verify(pk, b"msG", s, ctx=ctx)
            for call in (lambda: oqs.sign(sk, b"m", deterministic=True),
                         lambda: oqs.keygen(seed=bytes(32))):
                try:
                    call()
                    raise AssertionError("liboqs has no deterministic signing / xi keygen")
                except QVError as e:
                    assert e.name == "QV_ERR_NOTSUP", e
        print("ok")
    """, QUANTAVIRT_LIBOQS=str(fake_liboqs))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_wrong_sizes_are_refused(fake_liboqs: Path) -> None:
    out = _python("""
        from quantavirt.errors import QVError
        from quantavirt.pqc import KEM
        kem = KEM("ML-KEM-768", backend="liboqs")
        try:
            kem.keygen()
        except QVError as e:
            print(e.name)
    """, QUANTAVIRT_LIBOQS=str(fake_liboqs), FAKE_OQS_BAD_SIZES="1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PQC_ERR_BACKEND"
