"""Chat history files: what is exported reads back the same; other shapes that are chats are read;
anything else is refused with a message saying what was wrong."""

from __future__ import annotations

import json

import pytest

from engine.chat.history import Chat, ChatHistoryError, parse, read, save

TURNS = [{"role": "assistant", "content": "Ahoy!"}, {"role": "user", "content": "Hello"},
         {"role": "assistant", "content": "Arr, matey!"}]


def test_an_exported_chat_reads_back_the_same(tmp_path):
    chat = Chat(character="Captain Bess", system="You are Captain Bess.", adapter="pirate:checkpoint-20",
                messages=TURNS)
    path = save(chat, tmp_path)
    assert path.parent == tmp_path and path.name.startswith("chat-Captain-Bess-") and path.suffix == ".json"
    again = read(path)
    assert again == chat and again.turns() == TURNS
    assert json.loads(path.read_text())["format"] == "lora-workbench-chat"


def test_a_bare_list_and_openai_messages_are_chats_too():
    assert parse(json.dumps(TURNS)).turns() == TURNS
    chat = parse(json.dumps({"messages": [{"role": "system", "content": "Be brief."}, *TURNS]}))
    assert chat.system == "Be brief." and chat.turns() == TURNS
    assert parse(b'\xef\xbb\xbf' + json.dumps(TURNS).encode()).turns() == TURNS  # a byte-order mark is fine


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not valid JSON"),
    (json.dumps({"name": "Bess", "first_mes": "Ahoy"}), r"needs a 'messages' list .* \(found: name, first_mes\)"),
    (json.dumps("hello"), r"\(found: str\)"),
    (json.dumps({"format": "something-else", "messages": []}), "format is 'something-else'"),
    (json.dumps([{"role": "bot", "content": "hi"}]), "Message 1 has the role 'bot'; a role is 'user', 'assistant'"),
    (json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant"}]), "Message 2 has no 'content'"),
    (json.dumps([{"role": "user", "content": ["a", "b"]}]), "Message 1's content is not text"),
    (json.dumps([{"role": "user", "content": "hi"}, "hello"]), "Message 2 is not a"),
    (json.dumps([{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]),
     "Message 2 is a system message in the middle"),
])
def test_wrong_shapes_are_refused_with_a_plain_message(content, message):
    with pytest.raises(ChatHistoryError, match=message):
        parse(content)


def test_a_binary_file_or_a_missing_one_is_refused(tmp_path):
    png = tmp_path / "picture.json"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(ChatHistoryError, match="not text"):
        read(png)
    with pytest.raises(ChatHistoryError, match="There is no file"):
        read(tmp_path / "missing.json")
