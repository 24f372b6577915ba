"""Small archives in the official formats of Fashion-MNIST / MNIST (IDX) and CIFAR-10
(python pickles in a tarball), and the registration of their digests for a test."""

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from odeness.data import _images as images


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, rng, *, train=30, test=10, compress=True) -> dict:
    """IDX files like Fashion-MNIST's; returns the arrays and each file's digests."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (train, 28, 28)),
        "train_labels": rng.integers(0, 10, train),
        "test_images": rng.integers(0, 256, (test, 28, 28)),
        "test_labels": rng.integers(0, 10, test),
    }
    digests = {}
    for role, name in images._IDX_FILES.items():
        raw = _idx(arrays[role])
        data = gzip.compress(raw, mtime=0) if compress else raw
        (folder / (f"{name}.gz" if compress else name)).write_bytes(data)
        digests[role] = frozenset({_sha(data)})
    return {"arrays": arrays, "digests": digests}


def write_cifar(folder: Path, rng, *, per_batch=4, test=6) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for split, members in images.archives.CIFAR10_MEMBERS.items():
        for member in members:
            n = test if split == "test" else per_batch
            batches[member] = {
                b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                b"labels": rng.integers(0, 10, n).tolist(),
            }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, batch in batches.items():
            blob = pickle.dumps(batch, protocol=2)
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    data = buffer.getvalue()
    (folder / "cifar-10-python.tar.gz").write_bytes(data)
    return {"batches": batches, "digests": {"archive": frozenset({_sha(data)})}}


def only(digests: dict) -> classmethod:
    """A `digests` classmethod accepting exactly `digests[role]`."""
    return classmethod(lambda cls, role: digests[role])


def accept(monkeypatch, builder, digests: dict) -> None:
    """Register the digests of generated archives as the accepted ones for a test."""
    monkeypatch.setattr(builder, "digests", only(digests))
