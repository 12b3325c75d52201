// The official TypeScript MCP SDK client against the hub, over streamable HTTP (/mcp) and the
// older HTTP+SSE transport (/sse), with the hub's bearer keys.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { startHub } from "./hub.mjs";

const API_KEY = "lmh_node_sdk_test_key";

function transportFor(kind, baseUrl, key) {
  const requestInit = { headers: key ? { Authorization: `Bearer ${key}` } : {} };
  return kind === "sse"
    ? new SSEClientTransport(new URL(`${baseUrl}/sse`), { requestInit })
    : new StreamableHTTPClientTransport(new URL(`${baseUrl}/mcp`), { requestInit });
}

async function connect(kind, baseUrl, key) {
  const client = new Client({ name: "node-sdk-test", version: "1.0.0" });
  await client.connect(transportFor(kind, baseUrl, key));
  return client;
}

const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("");

let hub;
before(async () => {
  hub = await startHub({ apiKey: API_KEY });
});
after(async () => {
  await hub?.stop();
});

for (const kind of ["streamable-http", "sse"]) {
  describe(`MCP over ${kind}`, () => {
    test("discovery, a two-turn conversation and the session resource", async () => {
      const client = await connect(kind, hub.baseUrl, API_KEY);
      try {
        assert.equal(client.getServerVersion().name, "llm-mcp-hub");
        const { tools } = await client.listTools();
        const chat = tools.find((t) => t.name === "chat");
        assert.ok(chat, JSON.stringify(tools));
        for (const name of ["list_providers", "get_session", "delete_session"]) {
          assert.ok(tools.some((t) => t.name === name), name);
        }
        assert.deepEqual(chat.inputSchema.required, ["message"]);
        assert.ok(chat.outputSchema);

        const { resources } = await client.listResources();
        const uris = resources.map((r) => r.uri);
        assert.ok(uris.includes("provider://list") && uris.includes("provider://claude"), uris.join());
        const { resourceTemplates } = await client.listResourceTemplates();
        assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ["provider://{name}", "session://{session_id}"]);
        const { prompts } = await client.listPrompts();
        assert.ok(prompts.length >= 3);
        const prompt = await client.getPrompt({ name: "review_code", arguments: { code: "let x = 1;" } });
        assert.match(prompt.messages[0].content.text, /let x = 1;/);

        const progress = [];
        const first = await client.callTool(
          { name: "chat", arguments: { provider: "claude", message: "my name is Ada" } },
          undefined,
          { onprogress: (p) => progress.push(p.message ?? "") },
        );
        assert.equal(first.isError, false, JSON.stringify(first));
        assert.equal(text(first), "echo: my name is Ada");
        // Progress is partial text as it streams. rmcp sends notifications and the response on
        // separate tasks, so the last notification may land after the result: a prefix.
        assert.ok(progress.length > 0 && "echo: my name is Ada".startsWith(progress.join("")), progress.join("|"));
        const { session_id: sessionId, model, usage } = first.structuredContent;
        assert.equal(model, "claude/sonnet");
        assert.ok(usage.output_tokens > 0);

        const second = await client.callTool({
          name: "chat",
          arguments: { model: "claude", message: "what is my name?", session_id: sessionId },
        });
        assert.equal(second.isError, false, JSON.stringify(second));
        assert.match(text(second), /my name is Ada[\s\S]*what is my name\?$/);
        assert.equal(second.structuredContent.session_id, sessionId);

        const read = await client.readResource({ uri: `session://${sessionId}` });
        assert.equal(read.contents[0].mimeType, "application/json");
        const session = JSON.parse(read.contents[0].text);
        assert.deepEqual(session.messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);

        const unknown = await client.callTool({ name: "chat", arguments: { provider: "nope", message: "hi" } });
        assert.equal(unknown.isError, true);
        assert.match(text(unknown), /model_not_found/);
      } finally {
        await client.close();
      }
    });

    test("a bad key is refused", async () => {
      const path = kind === "sse" ? "/sse" : "/mcp";
      for (const headers of [{}, { Authorization: "Bearer wrong" }]) {
        const r = await fetch(`${hub.baseUrl}${path}`, {
          headers: { Accept: "application/json, text/event-stream", ...headers },
        });
        assert.equal(r.status, 401);
      }
      await assert.rejects(connect(kind, hub.baseUrl, "wrong"), (e) => {
        assert.match(String(e), /401|Unauthorized|Invalid API key/i);
        return true;
      });
    });
  });
}
