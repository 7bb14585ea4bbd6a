"""A backend that replays given responses, for deterministic tests of the loop."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

from lossmagic.backends.base import Backend, ChatRequest, Completion, TokenCallback
from lossmagic.exceptions import BackendError, ConfigurationError

__all__ = ["ScriptedBackend"]


class ScriptedBackend(Backend):
    """Return the given responses in order, one per requested sample.

    A response is the continuation of the request's prefill, as a real model
    would produce it. Requests are kept in ``requests`` for inspection.
    """

    name = "scripted"

    def __init__(self, responses: Iterable[str], model: str = "scripted") -> None:
        self._responses = list(responses)
        self._model = model
        self.requests: list[ChatRequest] = []

    @classmethod
    def from_file(cls, path: str | None) -> ScriptedBackend:
        """Load the responses from a JSON file that contains a list of strings."""
        if not path:
            raise ConfigurationError(
                "the scripted backend needs a responses file.",
                "Pass --model FILE.json, a JSON list of response strings.",
            )
        try:
            responses = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read scripted responses from {path!r}: {exc}.",
                "Pass a JSON file that contains a list of strings.",
            ) from None
        if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
            raise ConfigurationError(
                f"scripted responses file {path!r} does not hold a list of strings.",
                'Write it as ["first response", "second response"].',
            )
        return cls(responses, model=Path(path).name)

    @property
    def model(self) -> str:
        return self._model

    def complete(
        self, request: ChatRequest, on_tokens: TokenCallback | None = None
    ) -> list[Completion]:
        self.requests.append(request)
        completions = []
        for _ in range(request.n):
            if not self._responses:
                raise BackendError(
                    self.name,
                    f"no scripted response left for request {len(self.requests)}.",
                    "Give one response per expected sample.",
                )
            start = time.perf_counter()
            text = self._responses.pop(0)
            tokens = len(text.split())
            if on_tokens is not None:
                on_tokens(tokens)
            completions.append(
                Completion(
                    text=text,
                    prompt_tokens=sum(len(m.content.split()) for m in request.messages),
                    completion_tokens=tokens,
                    seconds=time.perf_counter() - start,
                )
            )
        return completions
