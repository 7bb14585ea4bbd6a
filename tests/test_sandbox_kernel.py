"""Hostile candidates validated from inside a real IPython kernel leave the kernel working."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

HOSTILE = Path(__file__).parent / "hostile"
CASES = ["infinite_loop", "fork_bomb", "setsid_grandchild", "read_secret", "forge_exit"]


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(tmp_path), env={**os.environ, "OMP_NUM_THREADS": "1"})
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _execute(client: BlockingKernelClient, code: str) -> str:
    """Run ``code`` in the kernel and return its standard output; fail on an error reply."""
    chunks: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["header"]["msg_type"] == "stream":
            chunks.append(message["content"]["text"])

    reply = client.execute_interactive(code, timeout=300, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(chunks)


def test_kernel_survives_hostile_candidates(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    manager, client = kernel
    sources = {case: (HOSTILE / f"{case}.py").read_text() for case in CASES}
    code = textwrap.dedent(
        f"""
        import json
        from ipykernel import get_connection_file
        from lossmagic.sandbox import Sandbox

        sandbox = Sandbox(timeout=2.0, screen=False)
        substitutions = {{"secret_file": get_connection_file(), "marker": "24680.1357"}}
        results = {{}}
        for case, source in {sources!r}.items():
            for name, value in substitutions.items():
                source = source.replace("$" + name, value)
            report = sandbox.validate(
                source, "loss_fn", "predictions:float[N,1] targets:float[N,1]",
                options={{"probes": False}},
            )
            text = report.output + "".join(c.message + repr(c.evidence) for c in report.checks)
            results[case] = [report.outcome, report.passed, text]
        print(json.dumps(results))
        """
    )

    results = json.loads(_execute(client, code))
    follow_up = _execute(
        client,
        "import time; time.sleep(1)\n"
        "print(len(sandbox.processes()), 6 * 7)\n"
        "print(sandbox.validate('import torch\\n\\n\\ndef loss_fn(a, b):\\n"
        "    return torch.mean((a - b) ** 2)\\n', 'loss_fn', 'a:float[N] b:float[N]',"
        " options={'probes': False}).passed)",
    )

    assert manager.is_alive()
    assert set(results) == set(CASES)
    assert results["infinite_loop"][0] == "timeout"
    assert results["fork_bomb"][0] == "timeout"
    assert [case for case, (_, passed, _) in results.items() if passed] == []
    key = manager.session.key.decode()
    assert all(key not in text for _, _, text in results.values())
    assert follow_up.split() == ["2", "42", "True"]
