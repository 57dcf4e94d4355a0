"""The Export tab through its real client: `python app.py` in a subprocess, driven with gradio_client."""

from __future__ import annotations

import pytest
from export_runs import make_run
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.conftest import launched_app


@pytest.fixture(scope="module")
def app_with_run(new_workspace, tiny_model_path):
    """An app of its own (no model loaded) whose workspace holds one run with an adapter."""
    ws = new_workspace("export-tab", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    with launched_app(ws, "--no-model") as url:
        yield url, ws


def test_export_button_writes_verifies_and_lists_the_export(app_with_run):
    url, ws = app_with_run
    client = Client(url, verbose=False)
    report, table, folders = client.predict("tiny", ["adapter"], "Leaderboard", "", None, api_name="/export")
    assert "Verification of adapter: PASSED" in report and "identical on every prompt" in report
    assert "| adapter | passed | identical |" in table
    assert (ws.runs / "tiny" / "exports" / "adapter" / "verification.json").exists()


def test_export_problems_come_back_as_plain_messages(app_with_run):
    url, _ = app_with_run
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="Tick at least one format"):
        client.predict("tiny", [], "Leaderboard", "", None, api_name="/export")
    with pytest.raises(AppError, match="There is no run named 'ghost'"):
        client.predict("ghost", ["adapter"], "Leaderboard", "", None, api_name="/export")
