"""A real browser renders the %%lossgen panel: JupyterLab on loopback and headless Chromium.

JupyterLab executes a notebook whose %%lossgen cell repairs one scripted candidate. The
test waits until the panel's accordion shows both iterations, opens the second one and
keeps a screenshot in test-artifacts/. It needs Debian's chromium package (scripts/setup.sh
installs it), Playwright and JupyterLab.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

from .conftest import REPO
from .test_magic import MSE_BODY, UNREDUCED_BODY, scripted_tests_answer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
SPEC = "predictions:float[N,1] targets:float[N,1]"
KERNEL_IDLE = """() => {
    const kernel = window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel?.status === "idle";
}"""

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (scripts/setup.sh)")
pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (scripts/setup.sh)")
if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (scripts/setup.sh)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_notebook(folder: Path) -> Path:
    responses = folder / "responses.json"
    responses.write_text(json.dumps([scripted_tests_answer("my_mse"), UNREDUCED_BODY, MSE_BODY]))
    cells = [
        "%load_ext lossmagic",
        f"%config LossMagics.backend = 'scripted'\n%config LossMagics.model = {str(responses)!r}",
        f'%%lossgen --name my_mse --inputs "{SPEC}"\nmean squared error',
    ]
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = folder / "lossgen.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """Serve JupyterLab on loopback and return the notebook's URL."""
    write_notebook(tmp_path)
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--ServerApp.root_dir={tmp_path}", f"--IdentityProvider.token={token}",
        "--allow-root", "--LabApp.expose_app_in_browser=True",
        # Keep the server from contacting any other host: no news, update or extension checks.
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip

    log = (tmp_path / "jupyterlab.log").open("w")
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    # Turn off the news prompt, which would otherwise cover part of the screenshot.
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
    }
    server = subprocess.Popen(
        command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=environment
    )
    base = f"http://127.0.0.1:{port}"

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/status?token={token}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                output = (tmp_path / "jupyterlab.log").read_text()
                pytest.fail(f"JupyterLab did not start:\n{output}")
            time.sleep(0.5)
        yield f"{base}/lab/tree/lossgen.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_history_accordion_renders_in_chromium(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "browser-lossgen.png"
    screenshot.unlink(missing_ok=True)
    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1200},
        )
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(lab)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                timeout=60_000,
            )
            page.wait_for_function(KERNEL_IDLE, timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

            panel = page.locator(".lossmagic-panel")
            panel.wait_for(timeout=180_000)
            second = panel.get_by_text(re.compile(r"Iteration 2 \(\w+\): validated -> accept"))
            second.wait_for(timeout=180_000)
            assert panel.get_by_text("Iteration 1 (generate): non_scalar").count() == 1
            final = "Defined my_mse() from the candidate validated at iteration 2"
            panel.get_by_text(final).wait_for(timeout=60_000)

            second.click()
            opened = panel.get_by_text("Decision:").filter(visible=True)
            opened.first.wait_for(timeout=30_000)
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            if not screenshot.exists():
                page.screenshot(path=str(ARTIFACTS / "browser-lossgen-failed.png"), full_page=True)
                outputs = page.locator(".jp-OutputArea").all_inner_texts()
                print("cell outputs when the test stopped:", *outputs, sep="\n")
            browser.close()

    assert screenshot.stat().st_size > 10_000
