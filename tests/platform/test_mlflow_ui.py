"""The reviewer's view in a real browser: MLflow's UI shows the champion alias and a highlight image.

An MLflow server on 127.0.0.1 serves the session's tracking store; Debian's headless
Chromium, driven by Selenium through Debian's chromedriver, opens the registered model page
and an evaluation run's artifacts. Screenshots go to ``test-artifacts/``. Without chromium
the test skips locally and fails in CI (``CI=true``): ``scripts/install_browser.sh``
installs it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.config import load_params
from components.serving import checkpoint
from tests.registry.test_registry import make_candidate
from tests.support.registry_fakes import fake_factory
from tests.support.servers import free_port, running

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
PAGE_TIMEOUT_S = 150  # the UI bundle is large; a shared 2-core machine renders it slowly
SERVER_TIMEOUT_S = 180


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"browser test needs {missing}: run scripts/install_browser.sh (make browser)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, regionops_home):
    """One registered champion, and a highlight image logged as an evaluation artifact of its run."""
    from components.evaluation.highlights import draw_highlight
    from components.registry.client import registry_client
    from components.registry.promote import gate_and_register

    _require_browser()
    name = f"regionops-ui-{uuid.uuid4().hex[:6]}"
    params = load_params(
        REPO / "params.yaml", [f"registry.model_name={name}", f"registry.experiment={name}"]
    )
    root = tmp_path_factory.mktemp("ui")
    cand = make_candidate(root, seed=41, page_r1=0.6, region_hit1=0.4, experiment=name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint, "ENGINE_FACTORY", fake_factory)
        assert (
            gate_and_register(params, cand["model_dir"], cand["index_dir"], cand["metrics_path"])[
                "status"
            ]
            == "promoted"
        )

    heat = np.random.default_rng(0).random((8, 8))
    image = draw_highlight(
        Image.new("RGB", (240, 320), "white"),
        heat,
        [[0.1, 0.1, 0.5, 0.3]],
        [0.12, 0.1, 0.5, 0.32],
        "HIT q1 gold",
    )
    png = root / "q1.png"
    image.save(png)
    client = registry_client()
    client.log_artifact(cand["run_id"], str(png), "evaluation/highlights")
    experiment_id = client.get_run(cand["run_id"]).info.experiment_id
    return {
        "name": name,
        "run_id": cand["run_id"],
        "experiment_id": experiment_id,
        "image_size": image.size,
        "tracking_uri": client.tracking_uri,
    }


@pytest.fixture(scope="module")
def ui_server(reviewed, tmp_path_factory):
    """``mlflow server`` on a free 127.0.0.1 port, in its own process group, stopped by PID."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("ui-server") / "server.log"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # no background job workers: only the UI is needed
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        reviewed["tracking_uri"],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    with running("mlflow server", cmd, log_path, env, url, "/health", SERVER_TIMEOUT_S):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # An explicit driver path: Selenium Manager never tries to download a driver or a browser.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _body_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def test_registered_model_page_shows_the_champion_alias(reviewed, ui_server, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{ui_server}/#/models/{reviewed['name']}")
    try:
        WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=1).until(
            lambda d: "@ champion" in _body_text(d) and "Version 1" in _body_text(d)
        )
    except TimeoutException:
        _screenshot(browser, "mlflow_ui_model_page_FAILED.png")
        pytest.fail(
            f"model page never showed the champion alias; page text:\n{_body_text(browser)[:2000]}"
        )
    text = _body_text(browser)
    assert reviewed["name"] in text
    assert "gate.passed" in text  # the gate's tags are on the version, for the reviewer to read
    shot = _screenshot(browser, "mlflow_ui_model_page.png")
    assert Image.open(shot).size[0] > 0


# Images the page decoded from the artifact (not the UI's own inline icons).
_ARTIFACT_IMAGES_JS = """
return Array.from(document.images)
  .filter(img => img.complete && img.naturalWidth > 0 && !img.src.startsWith('data:'))
  .map(img => [img.src, img.naturalWidth, img.naturalHeight]);
"""


def test_evaluation_run_artifacts_show_the_highlight_image(reviewed, ui_server, browser):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    artifact = "evaluation/highlights/q1.png"
    browser.get(
        f"{ui_server}/#/experiments/{reviewed['experiment_id']}/runs/{reviewed['run_id']}"
        f"/artifacts/{artifact}"
    )
    try:
        images = WebDriverWait(browser, PAGE_TIMEOUT_S, poll_frequency=1).until(
            lambda d: d.execute_script(_ARTIFACT_IMAGES_JS)
        )
    except TimeoutException:
        _screenshot(browser, "mlflow_ui_run_artifacts_FAILED.png")
        pytest.fail(
            f"the run's highlight image never rendered; page text:\n{_body_text(browser)[:2000]}"
        )
    assert artifact in _body_text(browser)
    # The rendered image is the logged PNG: same pixel size, not a placeholder or an icon.
    assert any((w, h) == reviewed["image_size"] for _, w, h in images), images
    _screenshot(browser, "mlflow_ui_run_artifacts.png")
