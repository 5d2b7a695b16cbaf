"""Notebook 05 in a real browser: JupyterLab on loopback, headless Chromium, Run All, then the image probe is driven.

Run it with ``make test-browser`` (it installs Debian's ``chromium`` and the ``playwright`` package when missing;
it never runs ``playwright install``, which downloads browsers). Plain ``make test`` / ``pytest tests`` skip it in
milliseconds: the module is skipped unless ``DETECTLIB_BROWSER=1``, and playwright is imported only when it runs.

What happens:

1. a fresh temporary folder gets a copy of ``notebooks/06_gradcam_explorer.ipynb``; JupyterLab serves it from
   ``127.0.0.1`` on a free port, with a random token, ``--no-browser``, the ``smoke`` profile, ``HF_HUB_OFFLINE=1``,
   ``DETECTLIB_ROOT`` set to that folder (so the dataset and the two detectors are built there, never in the
   repository's ``.smoke/``), English labels, private Jupyter config/settings folders, no news feed and no update
   check and a read-only extension manager (JupyterLab would otherwise fetch from the internet), ``--allow-root``
   when run as root;
2. Debian's Chromium (``/usr/bin/chromium``), headless, with a fresh ``--user-data-dir``, no background networking,
   and a host-resolver rule plus a request filter that let it reach 127.0.0.1 only, opens the notebook and clicks
   Run -> Run All Cells;
3. the test waits (no fixed sleeps) until every code cell has an execution count and no cell shows an error;
4. the probe (an ``ipywidgets`` VBox) must be rendered: Sample dropdown, threshold slider, a scores table with a row
   per detector (ConvNeXt and CLIP head), the heatmap image, the Grad-CAM caption;
5. choosing the last dataset sample in the dropdown must reach the kernel and come back: the message line names the
   new file, the heatmap image is redrawn;
6. dragging the threshold slider's handle to the left end must relabel the table at "p(ai) >= 0.00" (every row
   ``AI-generated``), and typing 1 into the slider's readout at ">= 1.00" (each row labelled by p(ai) >= 1);
7. a screenshot of the page with the probe in view goes to ``build/browser/jupyterlab_probe.png`` (git-ignored;
   ``jupyterlab_probe_failure.png`` on a failure, with the server's log tail in the assertion message).

The server is shut down through its REST API at the end, also on failure (fixture teardown), then terminated if it
lingers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("DETECTLIB_BROWSER") != "1",
                                reason="real-browser test: run `make test-browser` (sets DETECTLIB_BROWSER=1)")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "06_gradcam_explorer.ipynb"
SCREENSHOTS = ROOT / "build" / "browser"
CHROMIUM = Path(os.environ.get("DETECTLIB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SERVER_START_S = 90
RUN_ALL_S = 600  # the notebook takes ~50 s on 2 busy CPU cores in the smoke profile; generous for a shared CI box
WIDGET_S = 120  # one probe round trip: scoring two detectors plus a Grad-CAM
AI_WORD, REAL_WORD = "AI-generated", "Real"  # DETECTLIB_LANG=en in the server's environment
BLOCKED: list[str] = []  # what the page asked for beyond 127.0.0.1 (aborted), for the test's output
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, whatever $http_proxy says


@dataclass
class Lab:
    url: str  # http://127.0.0.1:<port>
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(lab: Lab, path: str, method: str = "GET", timeout: float = 5) -> bytes:
    request = urllib.request.Request(f"{lab.url}{path}", method=method,
                                     headers={"Authorization": f"token {lab.token}"})
    with NO_PROXY.open(request, timeout=timeout) as response:
        return response.read()


def _write_settings(folder: Path) -> None:
    """JupyterLab user settings: no news/update toasts, and every cell attached to the DOM (no windowing)."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy2(ROOT / "notebooks" / NOTEBOOK, root / "notebooks" / NOTEBOOK)
    _write_settings(base / "lab-settings")
    port, token = _free_port(), secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    bin_dir = str(Path(sys.executable).parent)
    env.update({
        "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
        "DETECTLIB_PROFILE": "smoke", "DETECTLIB_ROOT": str(root), "DETECTLIB_LANG": "en",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
    })
    command = [
        str(Path(bin_dir) / "jupyter"), "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        # JupyterLab would reach the internet for a news feed, an update check and PyPI's extension list.
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = base / "jupyterlab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}")
            try:
                _api(lab, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer on {lab.url} in {SERVER_START_S} s:\n{lab.log_tail()}")
                time.sleep(0.25)
        yield lab
    finally:
        _shutdown(lab)


def _shutdown(lab: Lab) -> None:
    """Ask the server to stop (it shuts its kernels down), then SIGTERM, then SIGKILL its process group."""
    if lab.process.poll() is None:
        try:
            _api(lab, "/api/shutdown", method="POST")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
    for sig, wait_s in ((None, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if sig is not None and lab.process.poll() is None:
            os.killpg(lab.process.pid, sig)
        try:
            lab.process.wait(wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def page(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (make test-browser does)"
    profile_dir = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1100}, service_workers="block")

        def loopback_only(route):
            if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:  # e.g. the Colab badge's image in the notebook's first cell
                BLOCKED.append(route.request.url)
                route.abort()

        context.route("**/*", loopback_only)
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()


# --------------------------------------------------------------------------------------------------- helpers
def _wait_for_kernel_idle(page, lab: Lab) -> None:
    """The notebook's kernel is started, connected and idle: seen by the page (toolbar and status bar: not just
    the execution indicator, which reads "idle" while the session is still "No Kernel") and by the server."""
    page.wait_for_function(
        """() => {
            const name = (document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName') || {}).textContent || '';
            const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
            const bar = (document.querySelector('#jp-main-statusbar') || {}).textContent || '';
            return name.includes('Python') && indicator && indicator.dataset.status === 'idle'
                && /Python 3.*\\|\\s*Idle/.test(bar);
        }""", timeout=SERVER_START_S * 1000, polling=250)
    sessions = json.loads(_api(lab, "/api/sessions"))
    assert [s["kernel"]["execution_state"] for s in sessions] == ["idle"], sessions


def _wait_for_run_all(page) -> dict:
    """Until every code cell is numbered, or the run stalls (no cell queued or running, some never numbered, for
    10 s: Run All stops at a failing cell); returns the prompts, the stalled flag and every stderr output (tracebacks included)."""
    page.evaluate("() => { window.__detectlibIdlePolls = 0; }")
    handle = page.wait_for_function(
        """() => {
            const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell')];
            const prompts = cells.map(c => ((c.querySelector('.jp-InputPrompt') || {}).textContent || '').trim());
            const busy = prompts.some(p => p.includes('*'));
            const done = cells.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p));
            window.__detectlibIdlePolls = busy || done ? 0 : window.__detectlibIdlePolls + 1;
            const stalled = window.__detectlibIdlePolls > 20 && prompts.some(p => /\\[\\d+\\]/.test(p));
            if (!done && !stalled) return null;
            const stderr = [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output')]
                .filter(o => /stderr|error/.test(o.dataset.mimeType || ''))
                .map(o => o.textContent.slice(0, 3000));
            return {prompts, stalled, stderr};
        }""", timeout=RUN_ALL_S * 1000, polling=500)
    return handle.json_value()


def _score_rows(scores) -> list[tuple[str, float, str]]:
    """(detector, p(ai), label) for each row of the probe's scores table."""
    rows = []
    for row in scores.locator("tr").all()[1:]:
        cells = [c.inner_text().strip() for c in row.locator("td").all()]
        rows.append((cells[0], float(cells[1]), cells[3]))
    return rows


def _expect_labels(scores, threshold: float) -> list[tuple[str, float, str]]:
    from playwright.sync_api import expect

    expect(scores).to_contain_text(f"label at p(ai) ≥ {threshold:.2f}", timeout=WIDGET_S * 1000)
    rows = _score_rows(scores)
    assert {name for name, _, _ in rows} == {"ConvNeXt", "CLIP head"}, rows
    for name, p_ai, label in rows:
        if abs(p_ai - threshold) > 0.0005:  # the table rounds p(ai) to 3 decimals
            assert label == (AI_WORD if p_ai >= threshold else REAL_WORD), (name, p_ai, threshold, label)
    return rows


# ------------------------------------------------------------------------------------------------------ test
def test_notebook_05_runs_in_jupyterlab_and_the_probe_answers(lab, page):
    from playwright.sync_api import expect

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "jupyterlab_probe_failure.png").unlink(missing_ok=True)
    try:
        page.goto(f"{lab.url}/lab/tree/notebooks/{NOTEBOOK}?reset&token={lab.token}")
        notebook = page.locator(".jp-NotebookPanel")
        expect(notebook).to_be_visible(timeout=SERVER_START_S * 1000)
        _wait_for_kernel_idle(page, lab)

        left_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if left_tab.count():  # fold the file browser away: more room for the notebook in the screenshot
            left_tab.first.click()

        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        expect(notebook.locator(".jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]")).first
               ).to_be_attached(timeout=30_000)  # Run All reached the kernel: a cell is queued, running or done
        state = _wait_for_run_all(page)
        tracebacks = [text for text in state["stderr"] if "Traceback" in text]
        assert not state["stalled"] and not tracebacks, (
            f"Run All stopped: prompts {state['prompts']}\n" + "\n---\n".join(state["stderr"]))
        assert len(state["prompts"]) >= 10, state["prompts"]  # the notebook's code cells, all numbered

        # The probe: the VBox holding the Sample dropdown.
        probe = notebook.locator(".widget-vbox").filter(
            has=page.locator(".widget-dropdown label", has_text=re.compile(r"^Sample$")))
        expect(probe).to_have_count(1, timeout=WIDGET_S * 1000)
        probe.scroll_into_view_if_needed()
        sample = probe.locator(".widget-dropdown").filter(has=page.locator("label", has_text=re.compile("^Sample$")))
        slider = probe.locator(".widget-slider")
        message, scores, caption = (probe.locator(":scope > .widget-html").nth(i) for i in range(3))
        heatmap = probe.locator("img")
        expect(slider).to_be_visible()
        expect(scores.locator("table")).to_be_visible(timeout=WIDGET_S * 1000)
        expect(caption).to_contain_text("Grad-CAM of the 'ai' score at", timeout=WIDGET_S * 1000)
        expect(message).to_contain_text(" px")  # the cell's probe.load_sample(files[0])
        first_message = message.inner_text()
        _expect_labels(scores, 0.5)
        expect(heatmap).to_have_attribute("src", re.compile(r"^blob:"), timeout=WIDGET_S * 1000)
        first_src = heatmap.get_attribute("src")
        assert page.evaluate("img => img.naturalWidth > 0", heatmap.element_handle())

        # A selection in the Sample dropdown goes to the kernel and comes back as a new image, message and heatmap.
        options = sample.locator("option").all_inner_texts()
        assert len(options) >= 3 and options[0].startswith("("), options
        choice = options[-1]
        sample.locator("select").select_option(label=choice)
        expected = f"{Path(choice).name}: "
        expect(message).to_contain_text(expected, timeout=WIDGET_S * 1000)
        assert message.inner_text() != first_message
        expect(heatmap).not_to_have_attribute("src", first_src, timeout=WIDGET_S * 1000)

        # The threshold slider relabels: drag its handle to the left end, then type 1 into its readout.
        handle = slider.locator(".noUi-handle")
        track = slider.locator(".noUi-target")
        box, track_box = handle.bounding_box(), track.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(track_box["x"] - 40, box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        expect(slider.locator(".widget-readout")).to_have_text("0.00")
        low = _expect_labels(scores, 0.0)
        assert all(label == AI_WORD for _, _, label in low), low

        readout = slider.locator(".widget-readout")
        readout.click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type("1")
        page.keyboard.press("Enter")
        high = _expect_labels(scores, 1.0)
        assert [label for *_, label in high] != [label for *_, label in low] or all(p >= 1 for _, p, _ in high)

        probe.evaluate("el => el.scrollIntoView({block: 'start'})")  # the probe from its top row down
        page.mouse.move(0, 0)
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab_probe.png"))
        print("requests blocked (not to 127.0.0.1):", BLOCKED or "none")
    except Exception as err:
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab_probe_failure.png"))
        err.add_note(f"screenshot: {SCREENSHOTS / 'jupyterlab_probe_failure.png'}\n"
                     f"--- JupyterLab log tail ---\n{lab.log_tail()}")
        raise
