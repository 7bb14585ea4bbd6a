"""A backend that runs a causal language model in this process with transformers."""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import torch

from lossmagic.backends.base import (
    Backend,
    ChatRequest,
    Completion,
    TokenCallback,
    cut_at_stop,
    render_messages,
)
from lossmagic.exceptions import BackendError, ConfigurationError
from lossmagic.progress import Event, ProgressCallback, emit

__all__ = ["TransformersBackend", "pick_device"]

logger = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> tuple[torch.device, torch.dtype]:
    """Choose the device and weight dtype: CUDA in bf16 (fp16 without bf16), else CPU in fp32."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"

    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise ConfigurationError(
            f"invalid device {requested!r}: {exc}.", "Use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None

    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {requested!r} was requested but CUDA is not available.",
                "Use --device cpu or --device auto.",
            )
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return device, dtype
    return device, torch.float32


class _TokenCounter:
    """A generate() streamer that reports new tokens to a callback."""

    def __init__(self, callback: TokenCallback) -> None:
        self._callback = callback
        self._seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self._callback(int(value.numel()))

    def end(self) -> None:
        return None


class TransformersBackend(Backend):
    """Generate with a local path or hub id of a causal LM.

    On CUDA the model loads in bf16 (fp16 where bf16 is unsupported), on CPU in fp32.
    Only new tokens are decoded, so an echoed prompt never reaches extraction.
    """

    name = "transformers"

    def __init__(self, model: str, device: str = "auto") -> None:
        if not model.strip():
            raise ConfigurationError(
                "the transformers backend needs a model.", "Pass --model PATH_OR_HUB_ID."
            )
        self._model_id = model
        self._device_request = device
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def model(self) -> str:
        return self._model_id

    @property
    def device(self) -> torch.device:
        return pick_device(self._device_request)[0]

    def prepare(self, progress: ProgressCallback | None = None) -> None:
        if self._model is not None:
            return

        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype = pick_device(self._device_request)
        local = Path(self._model_id).expanduser()
        looks_local = self._model_id.startswith((".", "/", "~")) or self._model_id.count("/") > 1
        if looks_local and not local.exists():
            raise BackendError(
                self.name,
                f"could not load model {self._model_id!r}: no such folder.",
                "Pass an existing local model folder or a hub id such as "
                "Qwen/Qwen2.5-Coder-7B-Instruct.",
            )
        source = str(local) if local.exists() else self._model_id
        emit(progress, Event("stage", f"loading {self._model_id} on {device} ({dtype})"))
        started = time.perf_counter()

        try:
            tokenizer: Any = AutoTokenizer.from_pretrained(source)
            model: Any = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        except OSError as exc:
            first_line = (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
            raise BackendError(
                self.name,
                f"could not load model {self._model_id!r}: {first_line}",
                "Pass an existing local model folder or a hub id that is cached on this machine.",
            ) from exc

        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        logger.info(
            "loaded %s on %s in %.1f s", self._model_id, device, time.perf_counter() - started
        )

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def prompt_text(self, request: ChatRequest) -> str:
        """Render the request into the exact text the model continues."""
        self.prepare()
        messages = render_messages(request.messages)
        if getattr(self._tokenizer, "chat_template", None):
            text = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            # A base model without a chat template continues a plain transcript.
            turns = [f"{m['role'].capitalize()}:\n{m['content']}\n" for m in messages]
            text = "\n".join(turns) + "\nAssistant:\n"
        return str(text) + request.prefill

    def complete(
        self, request: ChatRequest, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        self.prepare()
        tokenizer = self._tokenizer
        started = time.perf_counter()

        encoded = tokenizer(
            self.prompt_text(request), return_tensors="pt", add_special_tokens=False
        ).to(self._model.device)
        prompt_length = int(encoded["input_ids"].shape[1])

        sampling = request.temperature > 0
        options: dict[str, Any] = {
            "max_new_tokens": request.max_new_tokens,
            "do_sample": sampling,
            "num_return_sequences": request.n,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if sampling:
            options.update(temperature=request.temperature, top_p=request.top_p)
        else:
            options.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            options.update(stop_strings=list(request.stop), tokenizer=tokenizer)
        if on_tokens is not None:
            options["streamer"] = _TokenCounter(on_tokens)
        if request.seed is not None:
            torch.manual_seed(request.seed)

        with torch.inference_mode():
            output = self._model.generate(**encoded, **options)

        seconds = time.perf_counter() - started
        completions = []
        for row in output:
            new_tokens = row[prompt_length:]
            special = set(tokenizer.all_special_ids)
            count = sum(1 for token in new_tokens.tolist() if token not in special)
            text = tokenizer.decode(new_tokens, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, request.stop)
            finish = "stop" if stopped or count < request.max_new_tokens else "length"
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=prompt_length,
                    completion_tokens=count,
                    seconds=seconds,
                    finish_reason=finish,
                )
            )
        return completions
