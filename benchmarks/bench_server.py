"""Measure the openai backend's throughput at several concurrency levels on one server.

Without ``--base-url`` it starts ``transformers serve`` on the embedded model's local
copy, on a free loopback port, and stops it at the end. Each level sends the same
prompt ``--requests`` times as one ``complete`` call with ``n`` samples (distinct seeds),
which is how ``--candidates`` and batch studies use the backend. It prints one line per
level and the throughput ratio of each level to the first, all measured in this run::

    python benchmarks/bench_server.py --concurrency 1,4
    python benchmarks/bench_server.py --base-url http://127.0.0.1:8000/v1 --model NAME
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# The server helper lives with the tests, which this script shares.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lossmagic.backends.base import ChatMessage, ChatRequest
from lossmagic.backends.embedded import (
    embedded_model_path,
    prepare_embedded_model,
)
from lossmagic.backends.openai import OpenAIBackend, ServerSettings
from tests.servers.transformers_serve import ServeProcess

PROMPT = (
    "Write the Python function `loss_fn(predictions, targets)` that returns the mean "
    "squared error between two float tensors of shape [N, 1] as a 0-dim tensor."
)


@dataclass(frozen=True)
class Level:
    """The measurements of one concurrency level."""

    concurrency: int
    requests: int
    seconds: float
    completion_tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds


def measure(
    base_url: str, model: str, concurrency: int, requests: int, max_new_tokens: int
) -> Level:
    """Send ``requests`` samples at once through a backend bounded to ``concurrency``."""
    backend = OpenAIBackend(
        model, base_url, settings=ServerSettings(read_timeout=600.0, concurrency=concurrency)
    )
    request = ChatRequest(
        messages=(ChatMessage("user", PROMPT),),
        max_new_tokens=max_new_tokens,
        temperature=0.7,
        seed=0,
        n=requests,
    )
    try:
        backend.complete(
            ChatRequest(messages=request.messages, max_new_tokens=8, temperature=0.0)
        )
        started = time.perf_counter()
        completions = backend.complete(request)
        seconds = time.perf_counter() - started
    finally:
        backend.close()
    tokens = sum(c.completion_tokens for c in completions)
    return Level(concurrency, requests, seconds, tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="a running server; default: start transformers serve")
    parser.add_argument("--model", help="model name on the server (default: the embedded copy)")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated levels")
    parser.add_argument("--requests", type=int, default=8, help="samples per level")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--serve-option",
        action="append",
        default=[],
        help="an option for the started server, e.g. --serve-option=--continuous-batching",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the started server"
    )
    args = parser.parse_args()
    levels = [int(value) for value in args.concurrency.split(",")]

    server: ServeProcess | None = None
    base_url, model = args.base_url, args.model
    if base_url is None:
        prepare_embedded_model()
        log = Path(tempfile.mkdtemp(prefix="lossmagic-bench-")) / "serve.log"
        server = ServeProcess(
            embedded_model_path(), log, threads=args.threads, extra_args=tuple(args.serve_option)
        )
        print(f"starting transformers serve on {server.base_url} (log: {log})", file=sys.stderr)
        server.start()
        base_url, model = server.base_url, server.model

    try:
        results = [
            measure(base_url, model, level, args.requests, args.max_new_tokens)
            for level in levels
        ]
    finally:
        if server is not None:
            server.stop()

    baseline = results[0].tokens_per_second
    for result in results:
        row = {
            **asdict(result),
            "seconds": round(result.seconds, 2),
            "tokens_per_second": round(result.tokens_per_second, 1),
            "requests_per_second": round(result.requests_per_second, 3),
            "ratio_to_first": round(result.tokens_per_second / baseline, 2),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
