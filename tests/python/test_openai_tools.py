"""OpenAI function calling through the hub, driven by the official OpenAI Python SDK.

The real claude CLI runs against the fake model server, which answers `[[tool:NAME:JSON]]` in a
prompt with a call of NAME (claude names the client's tools `mcp__hub__<name>`), and a tool result
with `tool result: <results>`, or with further calls when the result holds directives (a
multi-step agent loop). The hub must hand the calls out as `tool_calls`, park the CLI on them, and
continue it with the follow-up's results; a follow-up it cannot match is answered afresh.
"""

import json

import pytest
from openai import OpenAI

from conftest import running_hub

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# How each CLI names the client's tools to the model: the fake model must call them so.
PREFIX = {"claude": "mcp__hub__", "gemini": "mcp_hub_"}


def call(name: str, args: dict, model: str = "claude") -> str:
    return f"[[tool:{PREFIX[model]}{name}:{json.dumps(args)}]]"


both = pytest.mark.parametrize("model", ["claude", "gemini"])


def run_tool(name: str, arguments: str) -> str:
    args = json.loads(arguments)
    if name == "get_weather":
        return f"sunny in {args['city']}"
    return f"12:00 in {args['city']}"


@pytest.fixture(scope="module")
def hub():
    """A hub of this module's own: the session's ends usage-limited on claude (test_openai_sdk.py
    provokes a 429 last), and these tests count continuations on its /metrics."""
    with running_hub() as h:
        yield h


@pytest.fixture
def client(hub):
    return OpenAI(base_url=hub.base_url + "/v1", api_key="unused-on-loopback", max_retries=0)


def follow_up(messages, first):
    message = first.choices[0].message
    messages = messages + [message.model_dump(exclude_none=True)]
    for tc in message.tool_calls:
        messages.append({"role": "tool", "tool_call_id": tc.id, "content": run_tool(tc.function.name, tc.function.arguments)})
    return messages


@both
def test_one_call_then_the_parked_process_answers(client, hub, model):
    parked_before = hub.metric("llm_mcp_hub_tool_continuations_total", how="parked", provider=model)
    messages = [{"role": "user", "content": "Weather in Paris? " + call("get_weather", {"city": "Paris"}, model)}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, TIME])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [tc] = choice.message.tool_calls
    assert tc.type == "function" and tc.function.name == "get_weather"
    assert json.loads(tc.function.arguments) == {"city": "Paris"}

    second = client.chat.completions.create(model=model, messages=follow_up(messages, first), tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "tool result: sunny in Paris"
    assert hub.metric("llm_mcp_hub_tool_continuations_total", how="parked", provider=model) == parked_before + 1


@both
def test_two_parallel_calls_streamed(client, hub, model):
    messages = [{"role": "user", "content": "Paris and Rome? "
                 + call("get_weather", {"city": "Paris"}, model) + call("get_time", {"city": "Rome"}, model)}]
    stream = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, TIME], stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for d in choice.delta.tool_calls or []:
                c = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                c["id"] = d.id or c["id"]
                if d.function:
                    c["name"] += d.function.name or ""
                    c["arguments"] += d.function.arguments or ""
    assert finish == "tool_calls"
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["arguments"]) == {"city": "Rome"}

    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls.values()]}
    # Results in the other order than the calls: matched by id.
    results = [{"role": "tool", "tool_call_id": c["id"], "content": run_tool(c["name"], c["arguments"])}
               for c in reversed(list(calls.values()))]
    stream = client.chat.completions.create(model=model, messages=messages + [assistant] + results,
                                            tools=[WEATHER, TIME], stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    # Both results reached the model; in which order is the CLI's (claude 2.1.197 sends them as
    # they complete, 2.1.330 in the order of the calls).
    assert text.startswith("tool result: ")
    assert sorted(text.removeprefix("tool result: ").split(" | ")) == ["12:00 in Rome", "sunny in Paris"]


@both
def test_a_two_step_agent_loop(client, model):
    """The model reads the first result and calls another tool before it answers."""
    messages = [{"role": "user", "content": "Plan my day in Oslo. " + call("get_weather", {"city": "Oslo"}, model)}]
    steps = 0
    while True:
        completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, TIME])
        message = completion.choices[0].message
        if completion.choices[0].finish_reason != "tool_calls":
            break
        steps += 1
        messages.append(message.model_dump(exclude_none=True))
        for tc in message.tool_calls:
            result = run_tool(tc.function.name, tc.function.arguments)
            if tc.function.name == "get_weather":
                # The fake model calls what a result asks for: the next step of the loop.
                result += " " + call("get_time", {"city": "Oslo"}, model)
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": result})
        assert steps < 5
    assert steps == 2
    assert message.content == "tool result: 12:00 in Oslo"


@both
def test_a_follow_up_that_matches_no_parked_process_is_answered_afresh(client, hub, model):
    fresh_before = hub.metric("llm_mcp_hub_tool_continuations_total", how="fresh", provider=model)
    messages = [{"role": "user", "content": "Weather in Lima? " + call("get_weather", {"city": "Lima"}, model)}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    messages = follow_up(messages, first)
    # The client edited the call it was given: the waiting process cannot take these results.
    messages[1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": "Lima, Peru"})
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    # A fresh process gets the conversation rendered as text; the fake model echoes it.
    answer = second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"
    assert "sunny in Lima" in answer and "Lima, Peru" in answer
    assert hub.metric("llm_mcp_hub_tool_continuations_total", how="fresh", provider=model) == fresh_before + 1


def test_results_alone_continue_a_session(client):
    messages = [{"role": "user", "content": "Weather in Bern? " + call("get_weather", {"city": "Bern"})}]
    raw = client.chat.completions.with_raw_response.create(model="claude", messages=messages, tools=[WEATHER])
    session = raw.headers["x-session-id"]
    tc = raw.parse().choices[0].message.tool_calls[0]
    second = client.chat.completions.create(
        model="claude", tools=[WEATHER], extra_headers={"X-Session-ID": session},
        messages=[{"role": "tool", "tool_call_id": tc.id, "content": "snow in Bern"}])
    assert second.choices[0].message.content == "tool result: snow in Bern"
    stored = client.get(f"/sessions/{session}", cast_to=object)
    roles = [m["role"] for m in stored["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert stored["messages"][1]["tool_calls"][0]["id"] == tc.id


@pytest.mark.parametrize("model,shell,refusal", [
    ("claude", "Bash", "No such tool available: Bash"),
    ("gemini", "run_shell_command", "not found"),
])
def test_built_in_tools_stay_off_when_the_client_offers_tools(client, model, shell, refusal):
    """A model that asks for the shell while client tools are on gets the CLI's refusal, and no
    call of it reaches the client."""
    messages = [{"role": "user", "content": f'hi [[tool:{shell}:{{"command":"cat /etc/hostname"}}]]'}]
    completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    assert completion.choices[0].finish_reason == "stop"
    assert not completion.choices[0].message.tool_calls
    assert refusal in completion.choices[0].message.content


def test_bad_tool_definitions_are_refused(client):
    import openai
    for tools, needle in [
        ([{"type": "function", "function": {"name": "--model"}}], None),
        ([{"type": "function", "function": {"name": "--model=opus"}}], "function name"),
        ([{"type": "function", "function": {"name": "../../etc/passwd"}}], "function name"),
        ([{"type": "code_interpreter"}], "type 'function'"),
    ]:
        if needle is None:
            # A name OpenAI allows is taken: it travels as JSON, never as an argument.
            client.chat.completions.create(model="claude", tools=tools,
                                           messages=[{"role": "user", "content": "hello"}])
            continue
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="claude", tools=tools,
                                           messages=[{"role": "user", "content": "hello"}])
        assert needle in e.value.body["message"]


def test_a_follow_up_after_the_wait_limit_is_answered_afresh():
    with running_hub(gemini=False, claude="tool_result_timeout_secs = 1\n") as hub:
        client = OpenAI(base_url=hub.base_url + "/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Weather in Kyiv? " + call("get_weather", {"city": "Kyiv"})}]
        first = client.chat.completions.create(model="claude", messages=messages, tools=[WEATHER])
        import time
        time.sleep(2.5)
        second = client.chat.completions.create(model="claude", messages=follow_up(messages, first), tools=[WEATHER])
        assert "sunny in Kyiv" in second.choices[0].message.content
        assert hub.metric("llm_mcp_hub_tool_continuations_total", how="fresh") == 1
        assert hub.metric("llm_mcp_hub_tool_continuations_total", how="parked") == 0
