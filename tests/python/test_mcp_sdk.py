"""The official Python MCP SDK against the hub's MCP face, over streamable HTTP (/mcp) and the
older HTTP+SSE transport (/sse), with the hub's bearer keys."""

import contextlib
import json
import urllib.error
import urllib.request

import anyio
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TRANSPORTS = ["streamable-http", "sse"]


@contextlib.asynccontextmanager
async def connect(hub, transport: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if transport == "sse":
        streams = sse_client(hub.base_url + "/sse", headers=headers)
    else:
        http = create_mcp_http_client(headers=headers)
        streams = streamable_http_client(hub.base_url + "/mcp", http_client=http)
    async with streams as (read, write, *_):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run(main):
    async def bounded():
        with anyio.fail_after(60):
            await main()

    anyio.run(bounded)


def text_of(result) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_discovery_and_a_two_turn_conversation(keyed_hub, transport):
    async def main():
        async with connect(keyed_hub, transport, keyed_hub.api_key) as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert {"chat", "list_providers", "get_session", "delete_session"} <= set(tools)
            chat = tools["chat"]
            assert chat.input_schema["required"] == ["message"]
            assert "session_id" in chat.input_schema["properties"]
            assert chat.output_schema["required"] == ["session_id", "model", "usage"]

            resources = [str(r.uri) for r in (await session.list_resources()).resources]
            assert "provider://list" in resources and "provider://claude" in resources
            templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
            assert templates == ["provider://{name}", "session://{session_id}"]
            prompts = (await session.list_prompts()).prompts
            assert {"summarize", "translate", "review_code"} <= {p.name for p in prompts}
            assert all(p.description and p.arguments for p in prompts)
            prompt = await session.get_prompt("summarize", {"text": "The hub runs CLIs."})
            assert "The hub runs CLIs." in prompt.messages[0].content.text

            progress = []

            async def on_progress(done, total, message):
                progress.append(message)

            first = await session.call_tool(
                "chat", {"provider": "claude", "message": "my name is Ada"}, progress_callback=on_progress)
            assert not first.is_error, first
            assert text_of(first) == "echo: my name is Ada"
            # Partial text as it streams; the last notification may land after the result
            # (rmcp sends them on separate tasks), so it is a prefix of the reply.
            streamed = "".join(m for m in progress if m)
            assert streamed and "echo: my name is Ada".startswith(streamed), progress
            meta = first.structured_content
            assert meta["model"] == "claude/sonnet"
            assert meta["usage"]["output_tokens"] > 0
            session_id = meta["session_id"]

            second = await session.call_tool(
                "chat", {"model": "claude", "message": "what is my name?", "session_id": session_id})
            assert not second.is_error, second
            reply = text_of(second)
            assert "my name is Ada" in reply and reply.endswith("what is my name?"), reply
            assert second.structured_content["session_id"] == session_id

            read = await session.read_resource(f"session://{session_id}")
            content = read.contents[0]
            assert content.mime_type == "application/json"
            stored = json.loads(content.text)
            assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]

            # Errors are results with isError that say what is wrong, and the session goes on.
            unknown = await session.call_tool("chat", {"provider": "nope", "message": "hi"})
            assert unknown.is_error and "model_not_found" in text_of(unknown)
            missing = await session.call_tool("get_session", {})
            assert missing.is_error and "session_id" in text_of(missing)
            providers = await session.call_tool("list_providers", {})
            assert providers.structured_content["providers"][0]["name"] == "claude"

    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bad_key_is_refused(keyed_hub, transport):
    path = "/mcp" if transport == "streamable-http" else "/sse"
    for key in [None, "wrong-key"]:
        request = urllib.request.Request(keyed_hub.base_url + path, headers={
            "Accept": "application/json, text/event-stream",
            **({"Authorization": f"Bearer {key}"} if key else {})})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401

    async def main():
        async with connect(keyed_hub, transport, "wrong-key"):
            pass

    # The SDK refuses to connect (promptly: not a timeout).
    with pytest.raises(BaseException) as error:
        run(main)
    assert "TimeoutError" not in repr(error.value), repr(error.value)
