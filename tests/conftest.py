"""Test configuration: offline by default, isolated zoo/results folders, real shared data.

* Sockets are blocked: any attempt to reach the network fails loudly.
* ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are set so ``datasets`` never retries the hub.
* Every test gets its own ``BENCH_ZOO_DIR``, ``BENCH_RESULTS_DIR`` and ``BENCH_CACHE_DIR``;
  after the test, every results JSON written there is validated against the schema.
* ``BENCH_ISOLATION=builtin``: the pinned built-in submissions run in process, others in the
  sandbox.
* ``shared_data`` is ``../shared/data`` next to the project (override: ``BENCH_TEST_DATA``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BENCH_TEST_DATA", ROOT.parent / "shared" / "data"))


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to open a network connection."""


_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address, *args, **kwargs):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        raise NetworkBlockedError(f"network access is blocked in tests (tried {address!r})")
    return _real_connect(self, address, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder ``../shared/data`` (fails, not skips, if it is missing)."""
    if not (SHARED_DATA / "medmnist" / "pneumoniamnist.npz").is_file():
        pytest.fail(f"real test data not found at {SHARED_DATA}; set BENCH_TEST_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_sha256(shared_data: Path) -> dict[str, str]:
    """sha256 of every shared data file, from ``SHA256SUMS`` (relative path -> digest)."""
    out = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        out[name.strip().removeprefix("./").removeprefix("data/")] = digest
    return out


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Per-test zoo and results folders; validates every results file written there."""
    base = tmp_path_factory.mktemp("bench")
    monkeypatch.setenv("BENCH_ZOO_DIR", str(base / "zoo"))
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(base / "results"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(base / "adv_cache"))
    monkeypatch.delenv("BENCH_DATA_DIR", raising=False)
    # The pinned built-ins run in process (fast); every other submission still runs in the
    # sandbox. tests/unit/test_sandbox.py and test_isolation.py choose their mode explicitly.
    monkeypatch.setenv("BENCH_ISOLATION", "builtin")
    yield base
    from benchmark.results import read_result

    for path in (base / "results").rglob("*.json"):
        read_result(path)


@pytest.fixture(scope="session", autouse=True)
def _hf_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep Hugging Face caches inside the test's temporary folder."""
    cache = tmp_path_factory.mktemp("hf_cache")
    os.environ["HF_DATASETS_CACHE"] = str(cache / "datasets")
    os.environ["HF_HOME"] = str(cache / "home")
    yield


@pytest.fixture(scope="session")
def tiny_models(shared_data, tmp_path_factory):
    """Tiny CNNs trained for 2 epochs on real BreastMNIST (2 classes) and RetinaMNIST
    (5 classes), in a session zoo: victims (seed 0) and a surrogate (BreastMNIST, seed 1) for
    the attack tests."""
    from benchmark.models.zoo import ModelZoo
    from benchmark.training import TrainConfig, train_model

    zoo = ModelZoo(tmp_path_factory.mktemp("tiny_zoo"))
    out = {}
    for dataset in ("breastmnist", "retinamnist"):
        entry = train_model(
            TrainConfig(dataset=dataset, arch="tiny_cnn", epochs=2),
            data_dir=shared_data,
            zoo=zoo,
            progress=False,
        )
        out[dataset] = zoo.load(entry.model_id)[0]
    # A second BreastMNIST model (seed 1): the surrogate of transfer attacks.
    train_model(
        TrainConfig(dataset="breastmnist", arch="tiny_cnn", epochs=2, seed=1),
        data_dir=shared_data,
        zoo=zoo,
        progress=False,
    )
    out["zoo"] = zoo
    return out


@pytest.fixture(scope="session")
def campaign():
    """``benchmarks/protocol_campaign.py`` as a module (it imports its sibling
    ``campaign_log``, as it does when run as a script)."""
    import importlib.util
    import sys

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(
        "protocol_campaign", folder / "protocol_campaign.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["protocol_campaign"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
