"""GGUF exports of the default model run by llama.cpp itself (llama-completion, built from the pinned
source by `make gguf-runtime`), chatting through the template embedded in the file: f16 answers like the
in-app model for 64 tokens (each of its tokens the in-app model's first choice or a near tie with it,
teacher-forced) and stops at the end of its turn; q8_0 meets its floor; the export's report says so next
to the transformers check, and says how to build the runtime where it is missing."""

from __future__ import annotations

import pytest
from export_runs import ensure_llama_cpp, make_run

from engine.export import llamacpp, verify
from engine.export.exporter import export


@pytest.fixture(scope="module")
def default_run(new_workspace, default_model_path):
    ensure_llama_cpp("runtime")
    ws = new_workspace("export-llamacpp")
    make_run(ws, "persona", "default", default_model_path, scale=0.03)
    return ws


@pytest.mark.slow
def test_f16_runs_in_llama_cpp_with_the_same_reply_and_stops_at_end_of_turn(default_run):
    result = export(default_run, "persona", "gguf-f16")
    print(result.summary())
    runtime = result.report.runtime
    assert runtime.built and runtime.passed and result.passed, result.summary()
    # a reply that ends its turn, word for word with the in-app model's, stopped by llama.cpp at the same place
    assert any(a.reference_stopped and a.stopped and a.reply == a.reference for a in runtime.answers)
    # the f16 rule: fed llama.cpp's replies, the in-app model ranks each token (and the end) first or a near tie
    assert all(a.gaps and max(a.gaps) <= llamacpp.NEAR_TIE for a in runtime.answers)
    assert all(len(a.gaps) == a.reference_tokens for a in runtime.answers if a.reply == a.reference)
    assert ", stopped at end of turn" in result.summary() and "the largest gap is" in result.summary()
    assert sum(len(a.reply) for a in runtime.answers) > 100  # real replies, not empty ones


@pytest.mark.slow
def test_q8_0_runs_in_llama_cpp_and_meets_its_floor(default_run):
    result = export(default_run, "persona", "gguf-q8_0")
    print(result.summary())
    runtime = result.report.runtime
    assert runtime.built and runtime.passed and result.passed, result.summary()
    assert not runtime.runs_on and ", stopped at end of turn" in result.summary()


@pytest.mark.slow
def test_a_file_llama_cpp_cannot_load_fails_the_check_with_its_reason(default_run, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    from transformers import AutoTokenizer

    from engine.export.source import open_source

    tok = AutoTokenizer.from_pretrained(open_source(default_run, "persona").base_path())
    check = llamacpp.check(broken, verify.PROMPTS[:1], [[1, 2]], tok, verify.NEW_TOKENS)
    assert check.built and check.problem and not check.passed
    assert check.lines(verify.NEW_TOKENS)[0].startswith("llama.cpp: could not run the file: ")


def test_a_reply_that_runs_past_the_end_of_turn_fails():
    """The anchors' complaint: an export that does not stop. Replies as llama.cpp gave them, judged here."""
    ended = llamacpp.RuntimeAnswer("p", "Paris.", "Paris.", 3, 3, reference_stopped=True, stopped=True,
                                   gaps=[0.0, 0.0, 0.0])
    assert llamacpp.RuntimeCheck(True, [ended]).passed
    endless = llamacpp.RuntimeAnswer("p", "Paris.", "Paris. Paris. Paris.", 2, 3, reference_stopped=True, stopped=False,
                                     gaps=[0.0] * 6)
    check = llamacpp.RuntimeCheck(True, [endless])
    assert not check.passed and "did NOT stop at end of turn" in check.lines(verify.NEW_TOKENS)[0]


def test_the_f16_rule_fails_a_reply_whose_token_the_in_app_model_ranks_far_below_first(tiny_model_path):
    """Teacher-forced on a reply, a real (tiny) model: its own greedy tokens have no gap; a reply with
    the token it ranks last in their place fails the rule and the report says which token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    with torch.no_grad():  # peaked logits, so that first and last are far apart
        model.get_input_embeddings().weight.mul_(40)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                     return_dict=True)["input_ids"]
    own = model.generate(torch.tensor([prompt]), max_new_tokens=4, do_sample=False)[0, len(prompt):].tolist()
    assert llamacpp.logit_gaps(model, prompt, own) == [0.0] * 4
    with torch.no_grad():
        last = model(torch.tensor([prompt + own[:2]])).logits[0, -1].argmin().item()
    wrong = own[:2] + [last]
    gaps = llamacpp.logit_gaps(model, prompt, wrong)
    assert gaps[:2] == [0.0, 0.0] and gaps[2] > 10 * llamacpp.NEAR_TIE
    answer = llamacpp.RuntimeAnswer("Hi", tok.decode(own), tok.decode(wrong), 2, 4, False, False, gaps)
    check = llamacpp.RuntimeCheck(True, [answer])
    assert check.runs_cleanly and not check.passed
    assert "FAILED" in check.lines(verify.NEW_TOKENS)[1] and "token 3 " in check.lines(verify.NEW_TOKENS)[1]
    wrong_start = llamacpp.RuntimeAnswer("p", "Paris is the capital.", "<|im_start|>user", 0, 5, True, False)
    assert not llamacpp.RuntimeCheck(True, [wrong_start]).passed  # not scored: no pass


def test_a_reply_is_judged_on_the_in_app_models_own_tokens_where_it_wrote_the_same_text(tiny_model_path):
    """"Par" + "is" prints as "Paris", which tokenizes as one other token: the in-app model's ids are kept
    for the text both wrote, and only what follows the point where the replies part is tokenized again."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    par, is_ = (tok(t, add_special_tokens=False)["input_ids"] for t in ("Par", "is"))
    assert tok("Paris", add_special_tokens=False)["input_ids"] not in (par + is_, [])
    ids = par + is_ + [tok.eos_token_id]
    same = llamacpp.RuntimeAnswer("p", "Paris", "Paris", 3, 3, True, True, printed="Paris" + tok.eos_token,
                                  reference_ids=ids)
    assert llamacpp.printed_tokens(same, tok) == ids
    parted = llamacpp.RuntimeAnswer("p", "Paris", "Paris, France", 2, 3, True, True, printed="Paris, France",
                                    reference_ids=ids)
    assert llamacpp.printed_tokens(parted, tok) == par + is_ + tok(", France", add_special_tokens=False)["input_ids"]


def test_without_the_runtime_the_report_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(llamacpp, "RUNTIME", tmp_path / "bin" / "llama-completion")  # not built here
    check = llamacpp.check(tmp_path / "x.gguf", verify.PROMPTS, [[1]] * 3, None, verify.NEW_TOKENS)
    report = verify.VerificationReport("gguf-f16", "x.gguf", "identical answers", runtime=check)
    report.answers = [verify.Answer("p", "a", "a", True, None, 1.0, 1)]
    assert report.passed  # the transformers check stands alone then
    assert "llama.cpp: not checked" in report.summary() and "`make gguf-runtime`" in report.summary()
