"""Character cards: example dialogues become training rows with the names filled in; the embedded
lorebook stays card context (in chat's system prompt when its keywords come up, never in a row);
a PNG holding both a V3 `ccv3` and a V2 `chara` chunk is read from `ccv3`."""

import base64
import json
import subprocess
import sys
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from engine.data import Options, inspect, read_card
from engine.data.lorebook import is_lorebook, lorebook_from_dict

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CARD = DATA / "card_v3_archivist.json"


def _all_text(rows) -> str:
    return "\n".join(m["content"] for row in rows for m in row["messages"])


def test_example_dialogues_become_rows_with_the_names_filled_in():
    found = inspect(CARD, Options(card_user="Ann"))
    assert (found.format, found.report.rows_kept) == ("character_card", 2)
    first, second = (row["messages"] for row in found.rows)
    assert first[0]["role"] == "system" and "Scenario: Ann has come to the Silver Tower" in first[0]["content"]
    assert first[1:] == [{"role": "user", "content": "Where are the maps kept?"},
                         {"role": "assistant", "content": "Third gallery, left of the astrolabe. *She taps the catalogue.*\n"
                                                          "Ask before you unroll anything older than the Queen."}]
    assert [m["role"] for m in second[1:]] == ["user", "assistant", "user", "assistant"]
    assert second[2]["content"] == "On feast days, under protest."  # a line under the character's own name
    assert second[4]["content"] == "Because Ann, books do not spill wine on you."
    assert "{{" not in _all_text(found.rows)
    assert inspect(CARD).rows[1]["messages"][4]["content"] == "Because User, books do not spill wine on you."


def test_the_lorebook_is_reported_as_card_context_and_never_trained():
    found = inspect(CARD)
    assert found.report.notes == [
        "Character card 'Archivist Wren' (V3): its 2 example dialogues (`<START>` blocks) become the training rows, "
        "`{{char}}` filled in as 'Archivist Wren' and `{{user}}` as the user name chosen (default 'User'). Its lorebook "
        "'Eldoria' with 4 entries ('The kingdom', 'Old maps', 'Tone', ...) is kept as card context for chat (the "
        "entries the messages call up join the system prompt), never as training rows."]
    text = _all_text(found.rows)
    assert "silver mines" not in text and "low magic" not in text and "sealed" not in text


def test_chat_gets_the_entries_its_recent_messages_call_up():
    card = read_card(CARD)
    assert card.lorebook.name == "Eldoria" and len(card.lorebook.entries) == 4
    base = card.system_prompt("Ann")
    opening = card.opening("Ann")[0]["content"]
    assert opening == base + "\n\nThe world is low magic: spells are rare, slow and costly."  # constant entry only
    said = lambda *texts: [{"role": "user", "content": t} for t in texts]  # noqa: E731
    prompt = card.chat_system_prompt(said("Tell me about the KINGDOM."), "Ann")
    assert prompt.endswith("low magic: spells are rare, slow and costly.\n\nEldoria is a mountain kingdom of silver "
                           "mines, ruled by Queen Maren the Just.")
    assert "sealed" not in card.chat_system_prompt(said("Where are the maps?"))  # selective: needs 'old' too
    assert "only Archivist Wren holds the key" in card.chat_system_prompt(said("Show me the old maps."))
    assert "Dragons" not in card.chat_system_prompt(said("Are there dragon bones here?"))  # disabled entry
    earlier = said("Tell me about Eldoria.", "Hm.", "Thanks.")  # scan depth 2: only the last two are searched
    assert "silver mines" not in card.chat_system_prompt(earlier)


def _png(path: Path, chunks: dict[str, str]) -> Path:
    info = PngInfo()
    for key, text in chunks.items():
        info.add_text(key, text)
    Image.new("RGB", (16, 16), (40, 40, 60)).save(path, pnginfo=info)
    return path


def _b64(card: dict) -> str:
    return base64.b64encode(json.dumps(card).encode()).decode()


def test_a_png_with_v3_and_v2_chunks_is_read_from_ccv3(tmp_path):
    v3 = json.loads(CARD.read_text())
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0",
          "data": {**v3["data"], "name": "Wren (old export)", "character_book": None}}
    found = inspect(_png(tmp_path / "wren.png", {"chara": _b64(v2), "ccv3": _b64(v3)}))
    assert found.report.notes[0] == ("The card was read from the PNG's 'ccv3' chunk (spec V3), preferred over its "
                                     "'chara' chunk (V2).")
    assert found.report.notes[1].startswith("Character card 'Archivist Wren' (V3)")
    card = read_card(tmp_path / "wren.png")
    assert (card.spec, card.name, card.lorebook.name) == ("v3", "Archivist Wren", "Eldoria")

    found = inspect(_png(tmp_path / "damaged.png", {"chara": _b64(v2), "ccv3": "bm90IGEgY2FyZA=="}))
    assert found.report.notes[0] == ("The PNG's 'ccv3' chunk (spec V3) is damaged, so the card was read from its "
                                     "'chara' chunk (V2).")
    assert read_card(tmp_path / "damaged.png").name == "Wren (old export)"


def test_world_info_entries_follow_sillytaverns_fields():
    book = lorebook_from_dict(json.loads((DATA / "world_info_eldoria.json").read_text()))
    assert [e.name for e in book.entries] == ["The kingdom of Eldoria", "The Silver Tower", "Tone", "Dragons (unused)"]
    active = book.active([{"role": "user", "content": "Is the Silver Tower old? And the dragon?"}])
    assert [e.name for e in active] == ["Tone", "The Silver Tower"]  # constant first (order 10); disabled left out
    assert not is_lorebook({"entries": [{"prompt": "a", "response": "b"}]})


def test_the_cli_takes_the_user_name_for_a_card():
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(CARD), "--card-user", "Ann", "--json",
                           "--no-render"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["format"] == "character_card" and out["rows_kept"] == 2
    assert "Ann has come to the Silver Tower" in out["example"][0]["content"]
