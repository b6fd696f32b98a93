"""rvos_core.torchfile: torch.save files read without torch.

Files are written here in torch's zip layout by a small writer of the test's own (fake ``torch``
modules in sys.modules stand for the classes the pickle names), so these tests need no torch; the
fusion tests compare the reader with real ``torch.save`` files.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvos_core.errors import InputError
from rvos_core.torchfile import BFloat16, as_float32, read_torch_file, release_pages


class FakeStorage:
    """A storage, pickled as torch does: a persistent id ("storage", class, key, location, numel)."""

    def __init__(self, key: str, kind: str, numel: int) -> None:
        self.key, self.kind, self.numel = key, kind, numel


class FakeTensor:
    """A tensor, pickled as torch does: ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``."""

    def __init__(self, storage: FakeStorage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self) -> tuple:
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, {})


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> tuple | None:
        if isinstance(obj, FakeStorage):
            kind = getattr(sys.modules["torch"], obj.kind)
            return ("storage", kind, obj.key, "cpu", obj.numel)
        return None


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: object) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
        utils.__name__,
        "_rebuild_tensor_v2",
    )
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)


def write_torch_like(path: Path, obj: object, storages: dict[str, np.ndarray]) -> None:
    """A zip in torch's layout: archive/data.pkl + archive/data/<key> (stored)."""
    buffer = io.BytesIO()
    TorchLikePickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data.tobytes())


def test_tensors_come_back_as_strided_views(tmp_path: Path, fake_torch: None) -> None:
    base = np.arange(24, dtype=np.float32)
    half = np.linspace(-2, 2, 6).astype(np.float16)
    obj = {
        "v": {
            "0": {
                "mask_logits": FakeTensor(FakeStorage("0", "FloatStorage", 24), 2, (2, 3), (6, 2))
            }
        },
        "h": FakeTensor(FakeStorage("1", "HalfStorage", 6), 0, (2, 3), (3, 1)),
        "scores": [0.5, 0.25],
    }
    write_torch_like(tmp_path / "x.pth", obj, {"0": base, "1": half})
    got = read_torch_file(tmp_path / "x.pth")
    expected = np.lib.stride_tricks.as_strided(base[2:], (2, 3), (24, 8))
    assert np.array_equal(got["v"]["0"]["mask_logits"], expected)
    assert got["h"].dtype == np.float16 and np.array_equal(got["h"], half.reshape(2, 3))
    assert got["scores"] == [0.5, 0.25]
    assert not got["h"].flags.writeable


def test_bfloat16_widens_exactly(tmp_path: Path, fake_torch: None) -> None:
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    write_torch_like(
        tmp_path / "b.pth",
        {"t": FakeTensor(FakeStorage("0", "BFloat16Storage", 4), 0, (4,), (1,))},
        {"0": bits},
    )
    got = read_torch_file(tmp_path / "b.pth")["t"]
    assert isinstance(got, BFloat16)
    assert np.array_equal(as_float32(got), values)


def test_tensor_past_its_storage_is_refused(tmp_path: Path, fake_torch: None) -> None:
    write_torch_like(
        tmp_path / "x.pth",
        {"t": FakeTensor(FakeStorage("0", "FloatStorage", 8), 0, (4, 4), (4, 1))},
        {"0": np.zeros(8, np.float32)},
    )
    with pytest.raises(InputError, match=r"shorter than its tensor|past its storage"):
        read_torch_file(tmp_path / "x.pth")


class Hostile:
    """Unpickling it would run code through ``builtins.exec`` (not ``print``, which a library in
    the same test process may have replaced: Ray's driver does, and the pickle would name it)."""

    def __reduce__(self) -> tuple:
        return (exec, ("print('executed')",))


def test_hostile_pickle_executes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_torch_like(tmp_path / "evil.pth", {"x": Hostile()}, {})
    with pytest.raises(
        InputError, match=r"refused: the pickle names (__builtin__|builtins)\.exec"
    ) as info:
        read_torch_file(tmp_path / "evil.pth")
    assert "executed" not in capsys.readouterr().out
    assert info.value.path == tmp_path / "evil.pth"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a torch zip file"),
        (b"\x80\x02}q\x00.", "not a torch zip file"),
    ],
)
def test_foreign_files_are_named(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(InputError, match=problem):
        read_torch_file(path)


def test_truncated_and_missing_files(tmp_path: Path, fake_torch: None) -> None:
    write_torch_like(
        tmp_path / "x.pth",
        {"t": FakeTensor(FakeStorage("0", "FloatStorage", 64), 0, (64,), (1,))},
        {"0": np.zeros(64, np.float32)},
    )
    data = (tmp_path / "x.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        read_torch_file(tmp_path / "cut.pth")
    with pytest.raises(InputError, match="file is missing"):
        read_torch_file(tmp_path / "nowhere.pth")


def test_released_pages_read_again(tmp_path: Path, fake_torch: None) -> None:
    """release_pages drops a tensor's pages from the process, and a later read sees the same
    values; arrays that are not tensors of a file (or are empty) are left alone."""
    values = np.arange(3 * 4096, dtype=np.float32)
    storage = FakeStorage("0", "FloatStorage", values.size)
    write_torch_like(
        tmp_path / "r.pth", {"t": FakeTensor(storage, 5, (3, 4000), (4096, 1))}, {"0": values}
    )
    tensor = read_torch_file(tmp_path / "r.pth")["t"]
    expected = np.array(tensor)
    release_pages(tensor)
    release_pages(tensor[1])
    assert np.array_equal(tensor, expected)
    own = np.ones(5000, np.float32)
    release_pages(own)
    release_pages(np.zeros(0, np.float32))
    release_pages("not a tensor")
    assert own.sum() == 5000
