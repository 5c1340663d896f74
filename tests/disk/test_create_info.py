"""storage.create / storage.info and the `quantavirt storage` CLI, checked by qemu-img."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from disk_helpers import check_clean, convert_to_raw, needs_qemu, qemu_img

from quantavirt.cli import main
from quantavirt.errors import QVError
from quantavirt.storage import create, info, open_disk


@needs_qemu
@pytest.mark.parametrize("size", [1 << 20, 20 << 30, (1 << 40) + 512 * 7, 3 * 512])
def test_created_qcow2_passes_qemu_check(tmp_path: Path, size: int) -> None:
    image = create(tmp_path / "new.qcow2", "qcow2", size)
    check_clean(image)
    qinfo = json.loads(qemu_img("info", "--output=json", str(image)).stdout)
    assert qinfo["format"] == "qcow2" and qinfo["virtual-size"] == size
    assert qinfo["cluster-size"] == 65536
    assert qinfo["format-specific"]["data"]["compat"] == "1.1"
    mine = info(image)
    assert mine["format"] == "qcow2" and mine["virtual_size"] == size
    assert mine["encrypted"] is False and mine["cluster_size"] == 65536


@needs_qemu
def test_created_qcow2_written_by_us_read_by_qemu(tmp_path: Path) -> None:
    image = create(tmp_path / "w.qcow2", "qcow2", 3 << 20)
    data = random.Random(2).randbytes(3 << 20)
    with open_disk(image) as disk:
        disk.write(0, data)
    check_clean(image)
    assert convert_to_raw(image, tmp_path / "w.raw") == data


@needs_qemu
def test_created_raw(tmp_path: Path) -> None:
    image = create(tmp_path / "r.img", "raw", 5 << 30)
    assert image.stat().st_size == 5 << 30 and image.stat().st_blocks == 0  # sparse
    qinfo = json.loads(qemu_img("info", "--output=json", str(image)).stdout)
    assert qinfo["format"] == "raw" and qinfo["virtual-size"] == 5 << 30
    assert info(image)["format"] == "raw" and info(image)["actual_size"] == 0


@needs_qemu
def test_created_with_backing(tmp_path: Path) -> None:
    base = create(tmp_path / "base.raw", "raw", 2 << 20)
    top = create(tmp_path / "top.qcow2", "qcow2", None, backing=str(base))
    check_clean(top)
    qinfo = json.loads(qemu_img("info", "--output=json", str(top)).stdout)
    assert qinfo["backing-filename"] == str(base)
    assert qinfo["backing-filename-format"] == "raw"
    assert info(top)["backing_file"] == str(base) and info(top)["backing_format"] == "raw"


def test_create_refuses_overwrite_and_bad_args(tmp_path: Path) -> None:
    create(tmp_path / "x.raw", "raw", 1 << 20)
    for args, code in [
        ((tmp_path / "x.raw", "raw", 1 << 20), "QV_ERR_EXIST"),
        ((tmp_path / "y.vmdk", "vmdk", 1 << 20), "QV_ERR_INVAL"),
        ((tmp_path / "z.raw", "raw", 0), "QV_ERR_INVAL"),
        ((tmp_path / "no" / "dir.raw", "raw", 1 << 20), "QV_ERR_NOENT"),
    ]:
        with pytest.raises(QVError) as err:
            create(*args)
        assert err.value.name == code


def test_cli_create_and_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("QUANTAVIRT_HOME", str(tmp_path))
    assert main(["storage", "create", "--name", "vm1", "--format", "qcow2", "--size", "20G"]) == 0
    image = tmp_path / "images" / "vm1"
    assert image.exists()
    capsys.readouterr()
    assert main(["storage", "info", "vm1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "qcow2" and data["virtual_size"] == 20 << 30
    assert main(["storage", "info", str(image)]) == 0
    out = capsys.readouterr().out
    assert "virtual size: 20G" in out and "encrypted:    no" in out
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["storage", "create", "--name", "d.raw", "--format", "raw", "--size", "1M",
                 "--dir", str(other)]) == 0
    assert (other / "d.raw").stat().st_size == 1 << 20
    # Errors are QVErrors printed by the CLI with exit code 1.
    assert main(["storage", "create", "--name", "vm1", "--format", "qcow2", "--size", "1G"]) == 1
    assert "QV_ERR_EXIST" in capsys.readouterr().err
    assert main(["storage", "create", "--name", "bad", "--size", "12Q"]) == 1
    assert main(["storage", "info", "missing"]) == 1
