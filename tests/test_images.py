"""MNIST, Fashion-MNIST and CIFAR-10 through tensorflow-datasets, without TensorFlow.

Real MNIST comes from the folder in `$ODENESS_MNIST_DIR` (`.ci/run` points it at the
shared copy). Fashion-MNIST and CIFAR-10 come from small archives generated here in the
official formats; their digests are registered as the accepted ones for the test, the
way tfds registers the checksums of a new dataset.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from archives import accept, write_cifar, write_idx_set

import odeness
from odeness.data import _images as images

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_mnist_prepares_offline_and_loads(tmp_path_factory):
    folder = os.environ.get("ODENESS_MNIST_DIR")
    if not folder:
        pytest.skip("ODENESS_MNIST_DIR is unset: no folder of real MNIST archives")
    cache = tmp_path_factory.mktemp("tfds")
    data = odeness.load_dataset("mnist", data_dir=folder, cache_dir=str(cache))
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (
        10000,
        28,
        28,
        1,
    )
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert data.num_classes == 10 and data.input_shape == (28, 28, 1)
    assert np.bincount(data.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert abs(float(data.x_train.mean()) - 0.1307) < 1e-4
    assert abs(float(data.x_train.std()) - 0.3081) < 1e-4
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    # The official order is kept: the first test digits are 7, 2, 1, 0, 4.
    assert data.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    # Prepared once: then the records are read, no archive needed (the test split).
    builder = images.prepare("mnist", archive_dir="/nonexistent", cache_dir=str(cache))
    x_test, y_test = images.load_split(builder, "test")
    np.testing.assert_array_equal(x_test, data.x_test)
    np.testing.assert_array_equal(y_test, data.y_test)
    assert list((cache / "odeness_mnist" / "1.0.0").glob("*.array_record*"))


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_generated_archives(tmp_path, monkeypatch, offline, compress):
    made = write_idx_set(tmp_path / "src", np.random.default_rng(0), compress=compress)
    accept(monkeypatch, images.OdenessFashionMnist, made["digests"])
    data = odeness.load_dataset(
        "fashion_mnist", data_dir=str(tmp_path / "src"), cache_dir=str(tmp_path / "tfds")
    )
    a = made["arrays"]
    np.testing.assert_array_equal(data.x_train[..., 0] * 255, a["train_images"])
    np.testing.assert_array_equal(data.y_train, a["train_labels"])
    np.testing.assert_array_equal(data.x_test[..., 0] * 255, a["test_images"])
    np.testing.assert_array_equal(data.y_test, a["test_labels"])


def test_cifar10_from_a_generated_archive(tmp_path, monkeypatch, offline):
    made = write_cifar(tmp_path / "src", np.random.default_rng(1))
    accept(monkeypatch, images.OdenessCifar10, made["digests"])
    monkeypatch.setenv("ODENESS_CIFAR10_DIR", str(tmp_path / "src"))
    data = odeness.load_dataset("cifar10", cache_dir=str(tmp_path / "tfds"))
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_test.shape == (6, 32, 32, 3)
    first = made["batches"]["cifar-10-batches-py/data_batch_1"]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each row-major.
    pixel = first[b"data"][0].reshape(3, 32, 32)[:, 5, 7]
    np.testing.assert_array_equal(data.x_train[0, 5, 7] * 255, pixel)
    assert data.y_train[:4].tolist() == first[b"labels"]
    last = made["batches"]["cifar-10-batches-py/data_batch_5"]
    assert data.y_train[16:].tolist() == last[b"labels"]


def test_truncated_archive_is_rejected_and_nothing_is_written(
    tmp_path, monkeypatch, offline
):
    made = write_cifar(tmp_path / "src", np.random.default_rng(2))
    accept(monkeypatch, images.OdenessCifar10, made["digests"])
    archive = tmp_path / "src" / "cifar-10-python.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(ValueError, match="cifar10: .* is truncated or corrupt"):
        odeness.load_dataset(
            "cifar10", data_dir=str(tmp_path / "src"), cache_dir=str(tmp_path / "tfds")
        )
    assert not list((tmp_path / "tfds").rglob("*.array_record*"))
    assert not (tmp_path / "tfds" / "odeness_cifar10" / "1.0.0").exists()


def test_wrong_file_is_rejected(tmp_path, monkeypatch, offline):
    made = write_idx_set(tmp_path / "src", np.random.default_rng(3))
    accept(monkeypatch, images.OdenessFashionMnist, made["digests"])
    src = tmp_path / "src"
    # The test labels where the training labels belong: valid IDX, wrong content.
    (src / "train-labels-idx1-ubyte.gz").write_bytes(
        (src / "t10k-labels-idx1-ubyte.gz").read_bytes()
    )
    with pytest.raises(ValueError, match="fashion_mnist train_labels: .* not the official"):
        odeness.load_dataset("fashion_mnist", data_dir=str(src), cache_dir=str(tmp_path))


def test_real_digests_reject_generated_archives(tmp_path, offline):
    write_idx_set(tmp_path / "src", np.random.default_rng(4))
    with pytest.raises(ValueError, match="not the official file"):
        odeness.load_dataset(
            "mnist", data_dir=str(tmp_path / "src"), cache_dir=str(tmp_path / "tfds")
        )


def test_missing_archive_says_where_to_put_it(tmp_path, offline):
    (tmp_path / "src").mkdir()
    with pytest.raises(FileNotFoundError, match="has no cifar-10-python.tar.gz"):
        odeness.load_dataset(
            "cifar10", data_dir=str(tmp_path / "src"), cache_dir=str(tmp_path / "tfds")
        )
    with pytest.raises(FileNotFoundError, match="archive folder .* does not exist"):
        odeness.load_dataset(
            "mnist", data_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "tfds")
        )


def test_no_archive_and_no_network_fails_fast(tmp_path, offline):
    with pytest.raises(
        FileNotFoundError,
        match=r"no local archives and .* is unreachable; .*ODENESS_FASHION_MNIST_DIR",
    ):
        odeness.load_dataset("fashion_mnist", cache_dir=str(tmp_path))


def test_archive_checksums_cover_every_official_url():
    for cls in images.BUILDERS.values():
        for role, url in cls.URLS.items():
            assert cls.digests(role), (cls.name, role)
            infos = cls.url_infos or {}  # what tfds's download manager verifies
            assert url in infos and infos[url].checksum in cls.digests(role)


# Makes TensorFlow look installed (`find_spec` finds it) and records any import of it.
_TENSORFLOW_TRAP = """
import importlib.abc, importlib.machinery, sys
attempts = []
class _Trap(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        attempts.append(module.__name__)
        raise ImportError("TensorFlow must not be imported")
sys.meta_path.insert(0, _Trap())
"""


@pytest.mark.slow
def test_no_tensorflow_after_loading_every_dataset(tmp_path):
    """In a fresh interpreter where TensorFlow looks installed (so tfds would take it if
    asked): prepare, load and reload each image set (from small archives in the official
    formats; `test_real_mnist_prepares_offline_and_loads` reads the real MNIST files),
    load every generated set and train on one; nothing tries to import TensorFlow.
    Without the trap this test would pass vacuously on a machine without it.
    """
    script = (
        _TENSORFLOW_TRAP
        + f"""
import numpy as np
sys.path.insert(0, {str(Path(__file__).parent)!r})
import archives as t
from odeness.data import _images as images
import odeness
images._reachable = lambda url, timeout=5.0: False
rng = np.random.default_rng(0)
base = {str(tmp_path)!r}
made = t.write_idx_set(t.Path(base) / "mnist", rng)
images.OdenessMnist.digests = t.only(made["digests"])
made = t.write_idx_set(t.Path(base) / "fashion", rng)
images.OdenessFashionMnist.digests = t.only(made["digests"])
made = t.write_cifar(t.Path(base) / "cifar", rng)
images.OdenessCifar10.digests = t.only(made["digests"])
dirs = {{"mnist": base + "/mnist", "fashion_mnist": base + "/fashion",
        "cifar10": base + "/cifar"}}
for name in dirs:
    for _ in range(2):  # prepare, then read the prepared records
        odeness.load_dataset(name, data_dir=dirs[name], cache_dir=base + "/tfds")
for name in ("sphere2", "sphere900", "three_minima"):
    odeness.load_dataset(name)
config = odeness.TrainConfig(dataset="fashion_mnist", steps=1, channels=2, iterations=2,
    seeds=(0,), batch_size=4, log_every=1, checkpoint_every=1, data_dir=base + "/fashion")
odeness.train(config, progress=False)
loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
print("TF imports attempted:", attempts, "TF modules:", loaded)
"""
    )
    env = {**os.environ, "ODENESS_TFDS_DIR": str(tmp_path / "tfds")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TF imports attempted: [] TF modules: []" in out.stdout
