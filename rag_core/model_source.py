"""Where a model's files come from: a local folder, the Hugging Face cache, or the hub.

Checked before loading so that a model that cannot be had fails in a second with a
message naming the setting to change, instead of after half a minute of retries.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from rag_core.errors import ModelLoadError

HUB_PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(endpoint: str | None = None, *, timeout_s: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the hub opens within ``timeout_s``."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    parsed = urlparse(endpoint or hub_endpoint())
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def is_cached(model_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model_id, "config.json")
    return isinstance(found, str)


def check_model_source(name: str, *, setting: str) -> str:
    """Return ``name`` if its files can be loaded, else raise :class:`ModelLoadError`.

    ``setting`` is the environment variable that chose the model, named in the error.
    """
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"Model folder {path} does not exist or holds no config.json; set {setting} "
                "to a Hugging Face model id or a folder with the model's files."
            )
        return str(path)
    if is_cached(name) or hub_reachable():
        return name
    raise ModelLoadError(
        f"Model {name!r} is not in the local Hugging Face cache and {hub_endpoint()} cannot "
        f"be reached; download it on a connected machine or set {setting} to a local folder "
        "holding the model."
    )
