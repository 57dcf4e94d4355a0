"""The Export tab: its handlers called as plain functions on a real workspace, and its API through the real
client against `python app.py` in a subprocess (downloads fetched over HTTP as a browser would)."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from export_runs import make_run
from gradio_client import Client
from gradio_client.exceptions import AppError

from engine.chat.models import ModelManager
from engine.hardware import Hardware, detect
from tests.conftest import launched_app
from ui import export_tab
from ui.context import Context

CPU = Hardware("cpu", "CPU x86_64, 2 cores", False, 8 * 2**30, "transformers", False)


@pytest.fixture(scope="module")
def app_with_run(new_workspace, tiny_model_path):
    """An app of its own (no model loaded) whose workspace holds one run with an adapter."""
    ws = new_workspace("export-tab", model=False)
    make_run(ws, "tiny", str(tiny_model_path), tiny_model_path)
    with launched_app(ws, "--no-model") as url:
        yield url, ws


def chosen(dropdown) -> str | None:
    return dropdown.constructor_args["value"]


def cpu_context(ws) -> Context:
    return Context(ws, ModelManager(ws, CPU), CPU)


def test_export_button_writes_verifies_lists_and_offers_the_download(app_with_run):
    url, ws = app_with_run
    client = Client(url, verbose=False)
    message, report, table, _, choice, *_, files, steps = client.predict(
        "tiny", ["adapter"], "Leaderboard", "", None, api_name="/export")
    assert message.startswith("Exported: adapter passed")
    assert "Verification of adapter: PASSED" in report and "identical on every prompt" in report
    assert "| adapter | passed | identical |" in table
    assert (ws.runs / "tiny" / "exports" / "adapter" / "verification.json").exists()
    assert choice["value"] == "adapter" and not files and "Make a .zip" in steps and "unzip tiny-adapter.zip" in steps

    files, steps = client.predict("tiny", "adapter", api_name="/export_zip")
    [zipped] = files  # fetched from the server, as the browser's link does
    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
    assert {"tiny-adapter/adapter_model.safetensors", "tiny-adapter/verification.json"} <= names
    assert all(n.startswith("tiny-adapter/") for n in names)


def test_a_refused_export_says_why_beside_the_button_and_keeps_the_report(app_with_run):
    _, ws = app_with_run
    ctx = cpu_context(ws)
    for formats, said in ((["merged4"], "Merged, 4-bit (bitsandbytes): Needs an NVIDIA GPU with bitsandbytes, and "
                                        "this machine has CPU x86_64"),
                          ([], "Tick at least one format."),
                          (["modelfile"], "export a GGUF (f16, q8_0 or q4_k_m) of this run first")):
        message, *rest = export_tab.do_export(ctx, "tiny", formats, "Leaderboard", "", None)
        assert said in message
        assert all(update == {"__type__": "update"} for update in rest)  # the report and lists stay as they were
    assert not (ws.runs / "tiny" / "exports" / "merged4").exists()
    message, *_ = export_tab.do_export(ctx, "ghost", ["adapter"], "Leaderboard", "", None)
    assert "There is no run named 'ghost'" in message and "Nothing was exported" in message


def test_a_direct_call_for_a_4bit_export_is_refused_on_a_cpu(app_with_run):
    """Through the API the choice is refused by the formats list itself, which names what works here."""
    if detect().can_4bit:
        pytest.skip("this machine can make 4-bit exports")
    url, ws = app_with_run
    with pytest.raises(AppError, match=r"'merged4'.* not in the list of choices: \['adapter', 'merged16'"):
        Client(url, verbose=False).predict("tiny", ["merged4"], "Leaderboard", "", None, api_name="/export")
    assert not (ws.runs / "tiny" / "exports" / "merged4").exists()


def test_formats_that_cannot_work_here_are_greyed_out_with_the_reason(app_with_run):
    _, ws = app_with_run
    ready, blocked = export_tab._format_choices(cpu_context(ws), "tiny", ["adapter", "merged4"])
    assert "merged4" not in [v for _, v in ready["choices"]] and ready["value"] == ["adapter"]
    assert [v for _, v in blocked["choices"]] == ["merged4", "modelfile"] and blocked["visible"]
    assert "**Merged, 4-bit (bitsandbytes)**: Needs an NVIDIA GPU" in blocked["info"]


def test_the_run_list_follows_the_workspace_and_keeps_the_choice(app_with_run):
    _, ws = app_with_run
    ctx = cpu_context(ws)
    assert chosen(export_tab.refresh_runs(ctx, None)) == "tiny"
    shutil.copytree(ws.runs / "tiny", ws.runs / "tiny-newer", ignore=shutil.ignore_patterns("exports"))
    try:
        (ws.runs / "tiny-newer" / "adapter").touch()  # its adapter is the newest
        fresh = export_tab.refresh_runs(ctx, None).constructor_args
        assert fresh["value"] == "tiny-newer" and set(fresh["choices"]) == {"tiny", "tiny-newer"}
        assert chosen(export_tab.refresh_runs(ctx, "tiny")) == "tiny"  # the person's choice is kept
    finally:
        shutil.rmtree(ws.runs / "tiny-newer")
    assert chosen(export_tab.refresh_runs(ctx, "tiny-newer")) == "tiny"  # gone: the newest left


def test_a_gguf_export_downloads_as_it_is_and_nothing_else_is_served(app_with_run):
    url, ws = app_with_run
    client = Client(url, verbose=False)
    message, *_, files, steps = client.predict("tiny", ["gguf-f16"], "Leaderboard", "", None, api_name="/export")
    assert message.startswith("Exported: gguf-f16 passed")
    folder = ws.runs / "tiny" / "exports" / "gguf-f16"
    assert sorted(Path(f).name for f in files) == ["Modelfile", "tiny-f16.gguf"]
    for file in files:  # fetched from the server: the very bytes of the export, served where they lie
        assert Path(file).read_bytes() == (folder / Path(file).name).read_bytes()
    assert "ollama create tiny -f Modelfile" in steps and "ollama run tiny" in steps
    # What was not offered stays private, and so does the export's own, guessable path of what was.
    for other in (ws.runs / "tiny" / "adapter" / "adapter_model.safetensors", folder / "verification.json",
                  folder / "tiny-f16.gguf", folder / "Modelfile"):
        with pytest.raises(urllib.error.HTTPError, match="403"):
            urllib.request.urlopen(f"{url}gradio_api/file={other}")


def test_a_passed_quantised_export_reads_as_a_pass():
    """The walk-through's q8_0 export: passed, yet its greedy text parted ways at token 10."""
    from engine.export.verify import Answer, VerificationReport

    parted = Answer("What is the capital of France?", "Paris is the capital.", "Paris is a city.", False, 9, 0.95, 60)
    same = Answer("Write a haiku about autumn leaves.", "Leaves fall.", "Leaves fall.", True, None, 1.0, 60)
    report = VerificationReport("gguf-q8_0", "/x", "the same next token 95% of the time or more", 0.95,
                                answers=[parted, same])
    text = report.summary()
    assert "PASSED" in text and "the same for the first 9 tokens, then they part ways" in text
    assert "next token 97.5% of the time (95% needed, so the difference is allowed)" in text
    assert "argmax" not in text and "differs from token" not in text
    row = {"identical": False, "first_difference": 9, "passed": True}
    assert export_tab._answers(row) == "the same for the first 9 tokens, then a difference its format allows"
    assert export_tab._answers({**row, "passed": False}) == "the same for the first 9 tokens, then different"
