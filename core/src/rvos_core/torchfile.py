"""Read a file written by ``torch.save`` without torch: tensors become memory-mapped NumPy arrays.

The zip format of ``torch.save`` (torch >= 1.6) is a zip archive (entries stored, not compressed)
with a pickle ``<name>/data.pkl`` and one raw file per storage ``<name>/data/<key>``. A tensor in
the pickle is a call of ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``
where ``storage`` is a persistent id ``("storage", <dtype class>, key, location, numel)``.

This reader unpickles with an allow-list: plain containers, ``collections.OrderedDict``, the
tensor rebuild call and the storage classes. Any other global is refused before anything runs,
so a hostile file executes nothing. A tensor is a strided view of its storage, which is a view of
one read-only memory map of the whole file: nothing is read until it is used, so upstream outputs
larger than memory stream (the fusion importers read them video by video).
"""

from __future__ import annotations

import io
import mmap
import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.errors import InputError

# torch storage class name -> the NumPy dtype of its raw bytes (bfloat16 as uint16: NumPy lacks it)
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip entry's local file header (30 bytes)
_LOCAL_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class _StorageType:
    """A storage class named by the pickle (``torch.FloatStorage`` ...)."""

    name: str


@dataclass(frozen=True)
class BFloat16:
    """Marks a bfloat16 tensor's raw uint16 array; ``float32()`` widens it exactly."""

    bits: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.bits.shape

    @property
    def ndim(self) -> int:
        return self.bits.ndim

    def float32(self) -> np.ndarray:
        """float32 [...] with the same values (bfloat16 is the top half of a float32)."""
        return (self.bits.astype(np.uint32) << 16).view(np.float32)


def as_float32(value: np.ndarray | BFloat16) -> np.ndarray:
    """A tensor read by ``read_torch_file`` as float32 (exact for every float dtype)."""
    if isinstance(value, BFloat16):
        return value.float32()
    return np.asarray(value, dtype=np.float32)


class _Archive:
    """The zip entries of a torch file, as views of one memory map."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise InputError(
                path, "not a torch zip file (torch.save of torch >= 1.6 writes one)"
            ) from None
        names = [n for n in self._zip.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise InputError(path, "not a torch file: no single data.pkl in the archive")
        self.prefix = names[0][: -len("data.pkl")]
        with path.open("rb") as handle:
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)

    def pickle_bytes(self) -> bytes:
        return self._zip.read(self.prefix + "data.pkl")

    def storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        """The raw storage ``data/<key>``: a read-only [numel] array over the file."""
        name = f"{self.prefix}data/{key}"
        try:
            info = self._zip.getinfo(name)
        except KeyError:
            raise InputError(self.path, f"storage {name} is missing from the archive") from None
        if info.compress_type != zipfile.ZIP_STORED or info.file_size < numel * dtype.itemsize:
            raise InputError(self.path, f"storage {name} is compressed or shorter than its tensor")
        start = self._data_offset(info)
        return np.frombuffer(self._map, dtype=dtype, count=numel, offset=start)

    def _data_offset(self, info: zipfile.ZipInfo) -> int:
        header = _LOCAL_HEADER.unpack_from(self._map, info.header_offset)
        if header[0] != _LOCAL_MAGIC:
            raise InputError(self.path, f"zip entry {info.filename} has a corrupt header")
        name_length, extra_length = header[9], header[10]
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        if start + info.file_size > len(self._map):
            raise InputError(self.path, f"zip entry {info.filename} runs past the end (truncated?)")
        return start


def _strided(
    storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], path: Path
) -> np.ndarray:
    """The tensor [*size] at element ``offset`` of ``storage`` with element strides ``stride``."""
    if len(size) != len(stride) or min((*size, *stride, offset, 0)) < 0:
        raise InputError(path, f"tensor of size {size} and stride {stride} is malformed")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else 0
    if all(size) and last >= storage.size:
        raise InputError(path, f"tensor of size {size} reaches past its storage of {storage.size}")
    item = storage.itemsize
    return np.lib.stride_tricks.as_strided(
        storage[offset:],
        shape=size,
        strides=tuple(s * item for s in stride),
        writeable=False,
    )


class _Unpickler(pickle.Unpickler):
    """Unpickles data.pkl, allowing only what a file of tensors in containers needs."""

    def __init__(self, archive: _Archive) -> None:
        super().__init__(io.BytesIO(archive.pickle_bytes()))
        self.archive = archive
        self._storages: dict[str, np.ndarray] = {}
        self._bf16: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        allowed: dict[tuple[str, str], Callable[..., Any]] = {
            ("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
        }
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise InputError(
            self.archive.path,
            f"refused: the pickle names {module}.{name}, which a file of tensors does not need "
            "(nothing was executed)",
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise InputError(self.archive.path, f"refused: unknown persistent id {pid!r:.60}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(numel, int):
            raise InputError(self.archive.path, f"refused: malformed storage record {pid!r:.60}")
        key = str(key)
        if key not in self._storages:
            dtype = STORAGE_DTYPES[kind.name]
            self._storages[key] = self.archive.storage(key, dtype, numel)
            if kind.name == "BFloat16Storage":
                self._bf16.add(key)
        return key

    def _rebuild_tensor(
        self, key: str, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
    ) -> np.ndarray | BFloat16:
        if not isinstance(key, str) or key not in self._storages:
            raise InputError(self.archive.path, "refused: a tensor without a storage")
        array = _strided(self._storages[key], offset, tuple(size), tuple(stride), self.archive.path)
        return BFloat16(array) if key in self._bf16 else array


def read_torch_file(path: Path) -> Any:
    """The object saved in ``path`` by ``torch.save``, tensors as read-only NumPy arrays.

    float tensors keep their dtype (float16 stays float16; bfloat16 comes as ``BFloat16``); use
    ``as_float32``. A missing, truncated, legacy-format or hostile file is an InputError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file is missing")
    unpickler = _Unpickler(_Archive(path))
    try:
        return unpickler.load()
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise InputError(path, f"corrupt pickle in the torch file ({exc})") from None


def _file_map(array: np.ndarray) -> mmap.mmap | None:
    """The memory map of a torch file under ``array`` (through its chain of bases), or None."""
    base: Any = array
    while isinstance(base, np.ndarray) or hasattr(base, "__array_interface__"):
        base = base.base
    owner = base.obj if isinstance(base, memoryview) else None
    return owner if isinstance(owner, mmap.mmap) else None


def release_pages(value: Any) -> None:
    """Drop the file pages a tensor of ``read_torch_file`` has read from this process's memory.

    They stay in the page cache, and a later read maps them again: reading a large file tensor by
    tensor and releasing each keeps the resident memory at what is in use. Anything that is not
    a tensor of a torch file is left alone.
    """
    array = value.bits if isinstance(value, BFloat16) else value
    mapped = _file_map(array) if isinstance(array, np.ndarray) and array.size else None
    if mapped is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    start_address = np.frombuffer(mapped, np.uint8).ctypes.data
    low, high = np.lib.array_utils.byte_bounds(array)
    start = (low - start_address) // mmap.PAGESIZE * mmap.PAGESIZE
    mapped.madvise(mmap.MADV_DONTNEED, start, min(high - start_address, len(mapped)) - start)
