"""Readers for the official archive formats, verified by content before they are parsed.

A file is accepted when the SHA-256 of its bytes, or of its decompressed content, is one of
the official digests listed for it: so a re-compressed or decompressed copy of an official
file passes, and a wrong, truncated or corrupted file is rejected with a one-line error.
Pickled CIFAR-10 batches are unpickled only after their archive has been verified.
"""

import gzip
import hashlib
import io
import pickle
import tarfile
import zlib
from collections.abc import Collection
from pathlib import Path

import numpy as np

_CHUNK = 1 << 20


def _sha256(stream) -> str:
    digest = hashlib.sha256()
    while block := stream.read(_CHUNK):
        digest.update(block)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def verify(path: str | Path, official: Collection[str], *, what: str) -> None:
    """Check that `path` holds the official `what`: its SHA-256, or that of its gzip
    content, must be in `official`.

    **Raises:** `FileNotFoundError` for a missing file, `ValueError` for a truncated,
    corrupted or wrong one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    with open(path, "rb") as f:
        digests = {_sha256(f)}
    if _is_gzip(path):
        try:
            with gzip.open(path, "rb") as f:
                digests.add(_sha256(f))
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"{what}: {path} is truncated or corrupt ({e})") from None
    if not digests & set(official):
        raise ValueError(
            f"{what}: {path} is not the official file (sha256 "
            f"{min(digests)[:16]}… matches none of the {len(official)} known digests; "
            "wrong, truncated or modified file?)"
        )


def _open(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: str | Path, official: Collection[str], *, what: str) -> np.ndarray:
    """An IDX file (MNIST's format), gzip-compressed or not, as a NumPy array, after
    `verify`.

    **Raises:** as `verify`, and `ValueError` for a malformed header.
    """
    path = Path(path)
    verify(path, official, what=what)
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_TYPES:
        raise ValueError(f"{what}: {path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(
            f"{what}: {path} holds {body.size} values where its header promises {shape}"
        )
    return body.reshape(shape)


CIFAR10_MEMBERS = {
    "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
    "test": ["cifar-10-batches-py/test_batch"],
}


def read_cifar10_python(
    path: str | Path, official: Collection[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`cifar-10-python.tar.gz`, after `verify`: `{split: (images (N, 32, 32, 3) uint8,
    labels (N,) int64)}` for `train` (data_batch_1…5) and `test` (test_batch).

    **Raises:** as `verify`, and `ValueError` for a missing member or a malformed batch.
    """
    path = Path(path)
    what = "cifar10"
    verify(path, official, what=what)
    out = {}
    with tarfile.open(path, "r:*") as tar:
        for split, members in CIFAR10_MEMBERS.items():
            images, labels = [], []
            for member in members:
                try:
                    raw = tar.extractfile(member)
                except KeyError:
                    raw = None
                if raw is None:
                    raise ValueError(f"{what}: {path} has no member {member}")
                batch = pickle.load(io.BytesIO(raw.read()), encoding="bytes")
                data = np.asarray(batch[b"data"], dtype=np.uint8)
                if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                    raise ValueError(
                        f"{what}: {member} holds data of shape {data.shape}, "
                        "expected (N, 3072)"
                    )
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
            out[split] = (np.concatenate(images), np.concatenate(labels))
    return out
