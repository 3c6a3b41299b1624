"""Shared test settings: small thread pools (2-core CI), no network, and one pinned device.

Tests that compare numbers must not inherit whatever Accelerate would pick: every run here (in this
process and in the CLI subprocesses it starts) trains on the CPU in fp32, also where a GPU is visible
(``ACCELERATE_USE_CPU``, which adaptcli's ``force_cpu`` honours). Only tests marked ``cuda``
(tests/cuda/) use the GPU, in subprocesses of their own, and they are skipped where torch sees none.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["ACCELERATE_USE_CPU"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items) -> None:
    """``cuda``-marked tests are skipped, with the reason, where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    build = f"torch {torch.__version__}, built {'with CUDA ' + torch.version.cuda if torch.version.cuda else 'for CPU only'}"
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU: torch sees none ({build})")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
