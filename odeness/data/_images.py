"""MNIST, Fashion-MNIST and CIFAR-10 as tensorflow-datasets builders without TensorFlow.

tfds's stock builders encode images as PNG, which needs TensorFlow to prepare. These store
each image as a `tfds.features.Tensor` of `uint8` in tfds's array-record format, prepared
once into the tfds data folder and read back with `tfds.data_source`.

Where the official archives come from:

- a local folder (`archive_dir`; in `load_dataset`, `data_dir` or the environment variable
  named by the builder's `ENV`, e.g. `ODENESS_MNIST_DIR`), holding the files under their
  official names, gzip-compressed or not; each is verified by content (`archives.verify`);
- otherwise the official URLs, through tfds's download manager, which checks the published
  sizes and SHA-256 digests in `checksums.tsv`. Without a network this fails at once with a
  message saying where to put the archives.

The examples keep the order of the official files (no shuffling when prepared).
"""

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse

import numpy as np
from tensorflow_datasets import core as tfds_core, data_source, features as tfds_features

from . import _archives as archives

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _reachable(url: str, timeout: float = 5.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


class OfficialImages(tfds_core.GeneratorBasedBuilder, skip_registration=True):
    """An image classification set prepared from its official archives (base class)."""

    VERSION = tfds_core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "uint8 Tensor images, no PNG."}
    SHAPE: ClassVar[tuple[int, int, int]]
    NUM_CLASSES: ClassVar[int] = 10
    URLS: ClassVar[dict[str, str]]
    """Official download URL of each archive, by role."""
    CONTENT_DIGESTS: ClassVar[dict[str, str]] = {}
    """SHA-256 of the official archives' decompressed content, by role, where known."""
    ENV: ClassVar[str]
    """Environment variable naming the folder that holds the archives."""
    HOMEPAGE: ClassVar[str]

    def __init__(self, *, archive_dir: str | Path | None = None, **kwargs):
        self._archive_dir = None if archive_dir is None else Path(archive_dir)
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    @classmethod
    def digests(cls, role: str) -> frozenset[str]:
        """The accepted SHA-256 digests of archive `role`: its published one (tfds's
        `url_infos`, read from `checksums.tsv` beside this module, which the download
        manager checks too) and that of its decompressed content, where known."""
        published = (cls.url_infos or {})[cls.URLS[role]].checksum
        content = cls.CONTENT_DIGESTS.get(role)
        return frozenset({published} | ({content} if content else set()))

    @classmethod
    def file_names(cls) -> dict[str, str]:
        """The official file name of each archive, by role."""
        return {role: url.rsplit("/", 1)[-1] for role, url in cls.URLS.items()}

    def _info(self) -> tfds_core.DatasetInfo:
        return tfds_core.DatasetInfo(
            builder=self,
            description=f"{self.name}: official archives, images as uint8 tensors.",
            features=tfds_features.FeaturesDict(
                {
                    "image": tfds_features.Tensor(shape=self.SHAPE, dtype=np.uint8),
                    "label": tfds_features.ClassLabel(num_classes=self.NUM_CLASSES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
            disable_shuffling=True,  # keep the official files' order
        )

    def local_archives(self) -> dict[str, Path] | None:
        """The local archive of each role, verified (`archives.verify`); None without
        `archive_dir`, once the official URLs are found reachable.

        **Raises:** `FileNotFoundError` saying where to put the archives, `ValueError` for
        an archive that is not the official one.
        """
        if self._archive_dir is not None:
            local = {
                role: _local(self._archive_dir, name, self)
                for role, name in self.file_names().items()
            }
            for role, path in local.items():
                archives.verify(path, self.digests(role), what=self.archive_name(role))
            return local
        first = next(iter(self.URLS.values()))
        if not _reachable(first):
            raise FileNotFoundError(
                f"{_public_name(self)}: no local archives and {urlparse(first).hostname} "
                f"is unreachable; put {', '.join(self.file_names().values())} in a folder "
                f"and pass it as data_dir (--data-dir) or set {self.ENV}"
            )
        return None

    def archive_name(self, role: str) -> str:
        """How errors name the archive `role`."""
        return f"{_public_name(self)} {role}" if len(self.URLS) > 1 else _public_name(self)

    def _archives(self, dl_manager) -> dict[str, Path]:
        local = self.local_archives()
        if local is not None:
            return local
        return {role: Path(p) for role, p in dl_manager.download(self.URLS).items()}

    def _split_generators(self, dl_manager):
        splits = self._read(self._archives(dl_manager))
        for split, (images, labels) in splits.items():
            if images.shape[1:] != self.SHAPE or len(images) != len(labels):
                raise ValueError(
                    f"{_public_name(self)}: {split} images of shape {images.shape} with "
                    f"{len(labels)} labels, expected (N, {', '.join(map(str, self.SHAPE))})"
                )
            if labels.min() < 0 or labels.max() >= self.NUM_CLASSES:
                raise ValueError(
                    f"{_public_name(self)}: {split} labels outside "
                    f"0..{self.NUM_CLASSES - 1}"
                )
        return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

    def _read(self, paths: Mapping[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image, "label": int(label)}


def _public_name(builder) -> str:
    return builder.name.removeprefix("odeness_")


def _local(folder: Path, name: str, builder) -> Path:
    """`folder/name`, or its decompressed twin `folder/name` without `.gz`."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{_public_name(builder)}: archive folder {folder} does not exist; put the "
            f"official {', '.join(builder.file_names().values())} (from "
            f"{next(iter(builder.URLS.values())).rsplit('/', 1)[0]}/) in a folder and "
            f"pass it as data_dir / --data-dir (or set {builder.ENV})"
        )
    for candidate in (name, name.removesuffix(".gz")):
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(
        f"{_public_name(builder)}: {folder} has no {name}; put the official "
        f"{', '.join(builder.file_names().values())} there (or set {builder.ENV})"
    )


class _IdxImages(OfficialImages, skip_registration=True):
    SHAPE = (28, 28, 1)

    def _read(self, paths):
        arrays = {
            role: archives.read_idx(path, self.digests(role), what=self.archive_name(role))
            for role, path in paths.items()
        }
        return {
            split: (arrays[f"{split}_images"][..., None], arrays[f"{split}_labels"])
            for split in ("train", "test")
        }


def _idx_urls(base: str) -> dict[str, str]:
    return {role: f"{base}{name}.gz" for role, name in _IDX_FILES.items()}


class OdenessMnist(_IdxImages):
    """MNIST (LeCun et al.): 60,000 / 10,000 handwritten digits, 28 × 28 × 1."""

    URLS = _idx_urls("https://storage.googleapis.com/cvdf-datasets/mnist/")
    # The decompressed official files' digests too, so a re-compressed copy passes.
    CONTENT_DIGESTS = {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    ENV = "ODENESS_MNIST_DIR"
    HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"


class OdenessFashionMnist(_IdxImages):
    """Fashion-MNIST (Xiao et al., 2017): 60,000 / 10,000 clothing images, 28 × 28 × 1."""

    URLS = _idx_urls("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
    ENV = "ODENESS_FASHION_MNIST_DIR"
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"


class OdenessCifar10(OfficialImages):
    """CIFAR-10 (Krizhevsky, 2009), python version: 50,000 / 10,000 images, 32 × 32 × 3."""

    SHAPE = (32, 32, 3)
    URLS = {"archive": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"}
    ENV = "ODENESS_CIFAR10_DIR"
    HOMEPAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"

    def _read(self, paths):
        return archives.read_cifar10_python(paths["archive"], self.digests("archive"))


BUILDERS: dict[str, type[OfficialImages]] = {
    "mnist": OdenessMnist,
    "fashion_mnist": OdenessFashionMnist,
    "cifar10": OdenessCifar10,
}


def prepare(
    name: str, *, archive_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> OfficialImages:
    """Prepare `name` into the tfds folder `cache_dir` (default: `$ODENESS_TFDS_DIR`, else
    tfds's own default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`) unless it is there.

    `archive_dir` (default: the builder's environment variable) holds the official
    archives; without one, they are downloaded.

    **Returns:** the prepared builder.
    """
    cls = BUILDERS[name]
    archive_dir = archive_dir or os.environ.get(cls.ENV) or None
    cache_dir = cache_dir or os.environ.get("ODENESS_TFDS_DIR") or None
    with _quiet_tfds():
        builder = cls(
            data_dir=None if cache_dir is None else str(cache_dir), archive_dir=archive_dir
        )
        prepared = builder.is_prepared()
    if not prepared:
        builder.local_archives()  # missing archives fail here, before tfds says anything
        builder.download_and_prepare()
    return builder


@contextlib.contextmanager
def _quiet_tfds():
    # A folder left by an interrupted preparation makes tfds warn about a missing
    # dataset_info.json while it looks for prepared versions; it is prepared again.
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_split(builder: OfficialImages, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All of `split` as `(images float32 in [0, 1] (N, H, W, C), labels int32 (N,))`,
    read with `tfds.data_source`."""
    source = data_source(
        builder.name, split=split, data_dir=builder.data_dir_root, download=False
    )
    # One batched read of every record (tfds's random-access sources take `__getitems__`).
    examples = source.__getitems__(range(len(source)))  # pyright: ignore[reportAttributeAccessIssue]
    images = np.stack([e["image"] for e in examples])
    labels = np.fromiter((e["label"] for e in examples), np.int32, len(examples))
    return images.astype(np.float32) / np.float32(255.0), labels
