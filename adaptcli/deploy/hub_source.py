"""``hf-hub:USER/NAME``: an export on the Hugging Face Hub, read through ``huggingface_hub`` (its local
cache first; with ``HF_HUB_OFFLINE=1`` only the cache). Torch-free."""

from __future__ import annotations

import os
from pathlib import Path

from adaptcli.errors import AdaptError

PREFIX = "hf-hub:"


def is_hub_name(source: str | Path) -> bool:
    """Whether ``source`` names a Hub repository (``hf-hub:USER/NAME``, optionally ``@REVISION``)."""
    return str(source).startswith(PREFIX)


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` switches the Hub off (read now: huggingface_hub reads it once, at its import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def hub_folder(source: str | Path) -> Path:
    """The local snapshot folder of ``hf-hub:USER/NAME[@REVISION]`` (downloaded into the cache when online);
    one line naming the problem and the fix when it is neither cached nor reachable."""
    name = str(source)[len(PREFIX):]
    repo, _, revision = name.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise AdaptError(f"{source}: name a Hub model repository as hf-hub:USER/NAME (optionally @REVISION)")
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo, revision=revision or None, repo_type="model"))
    except Exception as exc:  # noqa: BLE001 - the hub raises offline, network, auth and validation errors of many types
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        why = " (HF_HUB_OFFLINE is set)" if offline() else ""
        raise AdaptError(f"{source} is not in the local Hugging Face cache {constants.HF_HUB_CACHE} and could not be "
                         f"downloaded{why} ({type(exc).__name__}: {first}); download it once online "
                         f"(huggingface-cli download {repo}), or set HF_HUB_CACHE to a cache that holds it") from None
