"""A backend for OpenAI-compatible chat completion servers (vLLM, llama.cpp, transformers serve)."""

from __future__ import annotations

import os
import time
from typing import Any

from lossmagic.backends.base import Backend, ChatRequest, Completion, TokenCallback, render_messages
from lossmagic.exceptions import ConfigurationError, ServerError

__all__ = ["OpenAIBackend"]


class OpenAIBackend(Backend):
    """Send chat completions to a server; the model name is the server's."""

    name = "openai"

    def __init__(self, model: str | None = None, base_url: str | None = None) -> None:
        url = base_url or os.environ.get("LOSSMAGIC_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
        if not url:
            raise ConfigurationError(
                "the openai backend needs a server URL.",
                "Pass --base-url http://HOST:PORT/v1 or set LOSSMAGIC_BASE_URL.",
            )
        if not model:
            raise ConfigurationError(
                "the openai backend needs a model name.",
                "Pass --model NAME as the server knows it.",
            )
        self._model_name = model
        self.base_url = url
        self._client: Any = None

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def supports_prefill(self) -> bool:
        return False

    def _get_client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                base_url=self.base_url,
                api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
                timeout=120.0,
                max_retries=2,
            )
        return self._client

    def complete(
        self, request: ChatRequest, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        import openai

        completions = []
        for sample in range(request.n):
            started = time.perf_counter()
            try:
                response = self._get_client().chat.completions.create(
                    model=self._model_name,
                    messages=render_messages(request.messages),
                    max_tokens=request.max_new_tokens,
                    temperature=request.temperature,
                    top_p=request.top_p,
                    stop=list(request.stop) or None,
                    seed=None if request.seed is None else request.seed + sample,
                )
            except openai.APIConnectionError as exc:
                raise ServerError(
                    self.base_url, f"unreachable ({exc}).", "Start the server or fix --base-url."
                ) from None
            except openai.APIStatusError as exc:
                raise ServerError(
                    self.base_url, f"HTTP {exc.status_code}: {exc.message}."
                ) from None

            choice = response.choices[0]
            usage = response.usage
            text = choice.message.content or ""
            tokens = usage.completion_tokens if usage else len(text.split())
            if on_tokens is not None:
                on_tokens(tokens)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=usage.prompt_tokens if usage else 0,
                    completion_tokens=tokens,
                    seconds=time.perf_counter() - started,
                    finish_reason=choice.finish_reason or "stop",
                )
            )
        return completions
