"""The OpenAI-compatible API (issue 21) through the official `openai` client and raw HTTP, against the
real app on the default model: what SillyTavern and other front ends rely on."""

from __future__ import annotations

import httpx
import openai
import pytest
from compare_runs import adapter_run

from conftest import launched_app

ASK = [{"role": "user", "content": "Write the days of the week, separated by commas."}]


@pytest.fixture(scope="module")
def app(new_workspace, default_model_path):
    workspace = new_workspace("openai-api")
    adapter_run(workspace, "pirate", default_model_path, std=0.05, seed=1)
    with launched_app(workspace) as url:
        yield url


def client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "v1", api_key=key, max_retries=0, timeout=120)


def test_models_are_the_base_and_each_runs_adapter(app):
    assert [m.id for m in client(app).models.list()] == ["base", "pirate"]


def test_a_streamed_reply_equals_the_whole_one(app):
    whole = client(app).chat.completions.create(model="base", messages=ASK, temperature=0, max_tokens=24)
    assert whole.choices[0].finish_reason in ("stop", "length") and whole.choices[0].message.content
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 5
    chunks = list(client(app).chat.completions.create(model="base", messages=ASK, temperature=0, max_tokens=24,
                                                      stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # it streamed in pieces
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_an_adapter_answers_differently_from_the_base(app):
    asked = dict(messages=ASK, temperature=0, max_tokens=24)
    base = client(app).chat.completions.create(model="base", **asked).choices[0].message.content
    tuned = client(app).chat.completions.create(model="pirate", **asked).choices[0].message.content
    assert tuned != base
    assert client(app).chat.completions.create(model="base", **asked).choices[0].message.content == base


def test_a_stop_string_ends_the_reply_before_it(app):
    asked = dict(model="base", messages=ASK, temperature=0, max_tokens=40)
    full = client(app).chat.completions.create(**asked).choices[0].message.content
    stop = full.split()[len(full.split()) // 2]  # a word from the middle of the reply
    cut = client(app).chat.completions.create(stop=[stop], **asked).choices[0]
    assert cut.message.content == full[:full.index(stop)] and cut.finish_reason == "stop"


def test_bad_requests_get_openai_shaped_errors(app):
    with pytest.raises(openai.NotFoundError) as missing:
        client(app).chat.completions.create(model="nobody", messages=ASK)
    assert missing.value.code == "model_not_found" and "base, pirate" in missing.value.message
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client(app).chat.completions.create(model="base", messages=ASK, temperature=7)


def test_a_request_shaped_like_sillytaverns_is_answered(app):
    # SillyTavern's Chat Completion request for a "Custom (OpenAI-compatible)" source: the card's first
    # message as an assistant turn, and fields the engine has no use for.
    body = {"messages": [{"role": "system", "content": "Write Captain Anne's next reply."},
                         {"role": "assistant", "content": "Ahoy! Who goes there?"},
                         {"role": "user", "content": "A friend. May I come aboard?"}],
            "model": "pirate", "temperature": 0, "max_tokens": 20, "stream": False, "presence_penalty": 0,
            "frequency_penalty": 0, "top_p": 1, "top_k": 0, "stop": ["\nUser:"], "logit_bias": {},
            "seed": 7, "include_reasoning": False, "custom_field": 1}
    answer = httpx.post(app + "v1/chat/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]


def test_a_key_is_required_where_the_app_is_shared(new_workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DEMO", "1")  # access control is on: the API is refused without a key
    workspace = new_workspace("openai-key", model=False)
    with launched_app(workspace, "--no-model") as url:
        with pytest.raises(openai.AuthenticationError, match="WORKBENCH_API_KEY"):
            client(url).models.list()
    monkeypatch.setenv("WORKBENCH_API_KEY", "sk-workbench-test")
    with launched_app(workspace, "--no-model") as url:
        with pytest.raises(openai.AuthenticationError, match="missing or wrong"):
            client(url, "sk-wrong").models.list()
        assert [m.id for m in client(url, "sk-workbench-test").models.list()] == ["base"]


def test_a_text_completion_continues_the_prompt_as_written(app, default_model_path):
    # SillyTavern's Text Completion mode writes the whole prompt, template included.
    from transformers import AutoTokenizer

    asked = [{"role": "user", "content": "Name the days of the week."}]
    prompt = AutoTokenizer.from_pretrained(default_model_path).apply_chat_template(
        asked, tokenize=False, add_generation_prompt=True)
    whole = client(app).completions.create(model="base", prompt=prompt, temperature=0, max_tokens=16)
    assert whole.object == "text_completion" and whole.choices[0].text and whole.usage.prompt_tokens >= 10
    chat = client(app).chat.completions.create(model="base", temperature=0, max_tokens=16, messages=asked)
    assert whole.choices[0].text == chat.choices[0].message.content  # the same prompt, written out by hand
    streamed = "".join(c.choices[0].text for c in client(app).completions.create(
        model="base", prompt=prompt, temperature=0, max_tokens=16, stream=True) if c.choices)
    assert streamed == whole.choices[0].text


def test_a_client_over_its_requests_a_minute_gets_429_with_retry_after(new_workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CHATS_PER_MINUTE", "2")
    with launched_app(new_workspace("openai-busy")) as url:
        body = {"model": "base", "messages": ASK, "max_tokens": 2}
        for _ in range(2):
            assert httpx.post(url + "v1/chat/completions", json=body, timeout=120).status_code == 200
        refused = httpx.post(url + "v1/chat/completions", json={**body, "stream": True}, timeout=120)
        assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and "WORKBENCH_CHATS_PER_MINUTE" in error["message"]
        assert "Retry in" in error["message"] and "Traceback" not in refused.text
