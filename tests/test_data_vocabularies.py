"""More role vocabularies and trees, from small files in each project's layout: Cohere's
System/User/Chatbot, Gemini contents, {human, assistant} pairs, PIPPA's is_human turns, OpenAssistant
trees, and prompts that already hold a chat template."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.data import Options, inspect

DATA = Path(__file__).resolve().parent / "data"


def turns(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def test_cohere_chatbot_role_is_the_assistant():
    ins = inspect(DATA / "cohere_chat.jsonl")
    assert ins.format == "messages" and ins.report.rows_kept == 2
    assert [m["role"] for m in ins.rows[0]["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_gemini_contents_with_parts_model_role_and_system_instruction():
    ins = inspect(DATA / "gemini_tuning.jsonl", Options(text_only=True))
    assert (ins.format, ins.mapping) == ("gemini", {"contents": "contents", "system": "systemInstruction"})
    assert ins.rows == [{"messages": turns(("system", "You answer as a museum guide."), ("user", "Who painted the Night Watch?"),
                                           ("assistant", "Rembrandt, in 1642.\nIt hangs in the Rijksmuseum."))}]
    assert ins.report.errors == [{"line": 2, "message": "Line 2 holds an image content part; this app trains text models."}]


def test_lists_of_human_assistant_pairs():
    ins = inspect(DATA / "firefly_pairs.jsonl")
    assert (ins.format, ins.mapping) == ("turn_pairs", {"turns": "conversation"})
    assert ins.rows[0]["messages"] == turns(("user", "Give me three names for a bakery."),
                                            ("assistant", "Rise & Shine, The Crumb Club, Golden Loaf."),
                                            ("user", "Which one suits a seaside town?"),
                                            ("assistant", "Golden Loaf: it sounds warm and sunny."))


def test_is_human_turns_merge_per_speaker_and_the_persona_is_the_system_prompt():
    ins = inspect(DATA / "pippa.jsonl")
    assert (ins.format, ins.mapping) == ("is_human_turns", {"conversation": "conversation", "system": "bot_description"})
    assert ins.rows[0]["messages"][:4] == turns(
        ("system", "Elowen is an elf who guards an ancient forest. She speaks softly and in riddles."),
        ("assistant", "The forest is quiet today, traveller."), ("user", "Hello.\n\nI'm looking for the river."),
        ("assistant", "Follow the moss on the north side of the stones; water always finds the low road.\n\n*she smiles*"))


def test_message_tree_gives_its_top_ranked_path_or_every_branch_ending_in_a_reply():
    ins = inspect(DATA / "oasst_trees.jsonl")
    assert ins.format == "message_tree" and "1 of 1 sampled records have ranked replies." in ins.detection.evidence
    assert [m["content"] for m in ins.rows[0]["messages"]] == [
        "What is a good first houseplant?", "A pothos: it survives low light and irregular watering.",
        "How often should I water it?", "Every week or so, once the topsoil feels dry to the touch."]
    every = inspect(DATA / "oasst_trees.jsonl", Options(all_branches=True))
    assert [m["content"][:10] for r in every.rows for m in r["messages"][1:]] == [
        "A pothos: ", "How often ", "When the t", "A pothos: ", "How often ", "Every week", "A pothos: ", "Cactus."]
    # the branch that ends on "Is it safe for cats?" ends at its last reply; every row ends with the assistant
    assert all(r["messages"][-1]["role"] == "assistant" for r in every.rows)


def test_prompts_that_hold_a_template_are_split_and_said():
    ins = inspect(DATA / "templated_prompts.jsonl")
    assert ins.format == "pairs" and any("already hold a chat template (Alpaca" in e for e in ins.detection.evidence)
    assert ins.rows[0]["messages"] == turns(
        ("user", "Summarise the text in one sentence.\n\nThe town council voted to turn the old railway line into a "
                 "cycle path, opening next spring."),
        ("assistant", "The old railway line will become a cycle path next spring."))


@pytest.mark.parametrize("prompt,expected", [
    ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a moon of Mars.<|im_end|>\n<|im_start|>assistant\n",
     [("system", "Be brief."), ("user", "Name a moon of Mars.")]),
    ("<s>[INST] <<SYS>>\nYou are kind.\n<</SYS>>\n\nWhat is rain? [/INST] Water falling from clouds. </s><s>[INST] And snow? [/INST]",
     [("system", "You are kind."), ("user", "What is rain?"), ("assistant", "Water falling from clouds."), ("user", "And snow?")]),
    ("### Human: What is a comet?### Assistant:", [("user", "What is a comet?")]),
])
def test_other_templates_in_prompts(tmp_path, prompt, expected):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"prompt": prompt, "response": "Phobos, and a long reply here."}) + "\n")
    assert inspect(f).rows[0]["messages"] == turns(*expected, ("assistant", "Phobos, and a long reply here."))


@pytest.mark.parametrize("name,shape", [("cohere_chat.jsonl", "messages"), ("gemini_tuning.jsonl", "gemini"),
                                        ("firefly_pairs.jsonl", "turn_pairs"), ("pippa.jsonl", "is_human_turns"),
                                        ("oasst_trees.jsonl", "message_tree"), ("oasst1_messages.jsonl", "message_rows"),
                                        ("kto_mix.jsonl", "kto"),
                                        ("ultrafeedback_binarized.jsonl", "preference")])
def test_cli_inspect_shows_each_shape(name, shape):
    done = subprocess.run([sys.executable, "-m", "engine", "data", "inspect", str(DATA / name), "--json", "--no-render"],
                          cwd=DATA.parent.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["format"] == shape and out["evidence"] and out["rows_in"] >= 1


def test_flat_message_rows_are_built_into_trees_and_orphans_reported():
    ins = inspect(DATA / "oasst1_messages.jsonl")
    assert ins.format == "message_rows" and dict(ins.detection.candidates)["text"] == 1.0  # not read as plain text
    assert [m["content"] for m in ins.rows[0]["messages"]] == [
        "How do I keep basil alive indoors?", "Give it six hours of sun, water when the top soil is dry, and pinch off flowers.",
        "Which window is best?", "A south-facing one, in the northern hemisphere."]
    assert ins.samples[0].number == 1
    assert ins.report.errors == [{"line": 6, "message": "Line 6: its parent message 'gone' is not in the file, or is marked deleted"}]
    every = inspect(DATA / "oasst1_messages.jsonl", Options(all_branches=True))
    assert [r["messages"][1]["content"] for r in every.rows][1] == "Basil hates you."
