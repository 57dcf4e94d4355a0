"""Exporting a chat from the Chat tab leaves no temporary folder behind: one folder per app process,
earlier downloads cleared from it, and the folder gone when the process ends."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.chat import history as chat_history

ROOT = Path(__file__).resolve().parent.parent


def test_chat_downloads_share_one_folder_that_is_cleared_and_removed_at_exit():
    chat = chat_history.Chat(character="Pirate", messages=[{"role": "user", "content": "Ahoy"}])
    first = chat_history.save_download(chat)
    assert chat_history.read(first).messages[0].content == "Ahoy"
    assert first.parent.parent == Path(tempfile.gettempdir())  # where the web server may serve it from
    old = time.time() - 120
    os.utime(first, (old, old))  # served long ago
    second = chat_history.save_download(chat.model_copy(update={"character": "Parrot"}))
    assert second.parent == first.parent and not first.exists() and second.exists()

    script = "from engine.chat import history as h; print(h.save_download(h.Chat()).parent)"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("workbench-chats-") and not folder.exists()
