"""The official OpenAI Python SDK against the running hub, as a user's program would call it."""

import openai
import pytest
from openai import OpenAI


@pytest.fixture
def client(hub):
    return OpenAI(base_url=hub.base_url + "/v1", api_key="unused-on-loopback", max_retries=0)


@pytest.mark.parametrize("model", ["claude", "gemini/gemini-2.5-pro"])
def test_non_streaming(client, model):
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "ping from the sdk"}],
    )
    assert completion.object == "chat.completion"
    assert completion.model.startswith(model.split("/")[0] + "/")
    assert completion.choices[0].message.role == "assistant"
    assert "ping from the sdk" in completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["claude/sonnet", "gemini"])
def test_streaming_with_usage(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "[[words:6]] stream please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == "word1 word2 word3 word4 word5 word6"
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert "claude" in ids and "gemini/gemini-2.5-flash" in ids


def test_two_turn_conversation_through_extra_headers(client, hub):
    raw = client.chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "my favourite colour is teal"}])
    session_id = raw.headers["x-session-id"]
    assert raw.parse().choices[0].message.content.endswith("teal")

    second = client.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "what is my favourite colour?"}],
        extra_headers={"X-Session-ID": session_id},
    )
    # The model was sent the first turn as history (the fake model echoes its prompt).
    assert "my favourite colour is teal" in second.choices[0].message.content

    status, session = hub.get(f"/v1/sessions/{session_id}")
    assert status == 200
    assert [m["role"] for m in session["messages"]] == ["user", "assistant", "user", "assistant"]
    assert session["messages"][2]["content"] == "what is my favourite colour?"


# Last: the usage limit it provokes makes claude fail fast for the rest of the session.
def test_errors_become_sdk_exceptions(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "claude/sonnet" in str(err.value)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="claude/opus", messages=[{"role": "user", "content": "[[status:429]]"}])
