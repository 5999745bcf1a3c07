"""Where the models run, and where their files come from.

torch and huggingface_hub are imported inside the functions, so importing this module
costs nothing; only the model modules call it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag_core.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import torch

_DEVICE_PATTERN = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_HUB_PROBE_TIMEOUT_S = 5.0


def resolve_device(name: str | None) -> str:
    """Turn a configured device name into one torch can use here.

    ``None`` or ``"auto"`` picks CUDA, then Apple's MPS, then the CPU. An explicit
    name is checked against the hardware, so a missing GPU is a :class:`ConfigError`
    at start-up rather than a crash on the first question.
    """
    import torch

    wanted = "auto" if name is None else name.strip().lower()
    if wanted in {"", "auto"}:
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if not _DEVICE_PATTERN.match(wanted):
        raise ConfigError(
            f"Unknown device {name!r} in RAGBOT_DEVICE; use auto, cpu, cuda, cuda:N or mps."
        )
    if wanted.startswith("cuda"):
        _check_cuda(wanted)
    if wanted == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("RAGBOT_DEVICE is mps but MPS is not available here; use auto or cpu.")
    return wanted


def _check_cuda(wanted: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            f"RAGBOT_DEVICE is {wanted} but no CUDA GPU is available here; use auto or cpu."
        )
    index = int(wanted.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"RAGBOT_DEVICE is {wanted} but only {count} CUDA device(s) exist (cuda:0 to "
            f"cuda:{count - 1})."
        )


DTYPES = ("auto", "float32", "bfloat16", "float16")


def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AMX or AVX512-BF16, read on Linux).

    There, bfloat16 matrix products run several times faster than float32 (about 10x
    with AMX), which decides whether ``auto`` picks bfloat16 on the CPU.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        return False
    return False


def torch_dtype_for(device: str, dtype: str = "auto") -> torch.dtype:
    """The weights' dtype. ``auto``: bfloat16 on CUDA and on CPUs with native bfloat16,
    float32 elsewhere; ``float32`` gives results equal to the reference computations."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"RAGBOT_DTYPE must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda") or (device == "cpu" and cpu_has_fast_bf16()):
        return torch.bfloat16
    return torch.float32


@dataclass(frozen=True, slots=True)
class ModelSource:
    """What to hand to ``from_pretrained``: a folder or hub id, whether to stay offline,
    and the hub revision (None: the default branch; always None for a folder)."""

    location: str
    local_files_only: bool
    revision: str | None = None


def locate_model(name: str, *, hint: str, revision: str | None = None) -> ModelSource:
    """Find a model's files before loading it, failing fast with a clear message.

    ``name`` is a local folder or a Hugging Face hub id (at ``revision``, a branch, tag
    or commit; None for the default branch, and ignored for a folder); ``hint`` ends the
    error message and says how to configure another model. A hub id is used
    from the local cache without touching the network when the hub does not answer
    within a few seconds (or ``HF_HUB_OFFLINE`` is set), instead of the hub client's
    retries that take half a minute.

    Raises:
        ModelLoadError: the folder does not exist or holds no ``config.json``, or the
            hub id is neither cached here nor downloadable.
    """
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"Model folder {path} has no config.json; {hint}.")
        return ModelSource(location=str(path), local_files_only=True)
    if _looks_like_path(name):
        raise ModelLoadError(f"Model folder {name} does not exist; {hint}.")
    return _locate_on_hub(name, hint, revision or None)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def _locate_on_hub(repo_id: str, hint: str, revision: str | None) -> ModelSource:
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)
    except HFValidationError as error:
        raise ModelLoadError(
            f"Model {repo_id!r} is not a valid hub id ({error}); {hint}."
        ) from None
    if constants.HF_HUB_OFFLINE:
        if cached:
            return ModelSource(repo_id, local_files_only=True, revision=revision)
        raise ModelLoadError(
            f"Model {repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
            f"{hint}."
        )
    try:
        url = hf_hub_url(repo_id, "config.json", revision=revision)
        get_hf_file_metadata(url, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception as error:  # any failure means: do not wait on the hub again
        if cached:
            return ModelSource(repo_id, local_files_only=True, revision=revision)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(
            f"Model {repo_id} is neither cached here nor downloadable from the Hugging Face "
            f"hub ({reason}); {hint}."
        ) from None
    return ModelSource(repo_id, local_files_only=False, revision=revision)
