// LangChain JS (`@langchain/openai`, the library n8n's AI Agent node is built on) running an agent
// loop against the hub: `bindTools`, tool calls back as `tool_calls`, results sent as
// `ToolMessage`s, until the model answers. The fake model calls what `[[tool:…]]` directives ask
// for, in the prompt and in tool results.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { ChatOpenAI } from "@langchain/openai";
import { HumanMessage, ToolMessage } from "@langchain/core/messages";

import { startHub } from "./hub.mjs";

const API_KEY = "lmh_langchain_test_key";
let hub;

before(async () => {
  hub = await startHub({ apiKey: API_KEY, gemini: true });
});

after(async () => {
  await hub?.stop();
});

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather of a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
  {
    type: "function",
    function: {
      name: "get_time",
      description: "Local time of a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

// How each CLI names the client's tools to the model: the fake model must call them so.
const PREFIX = { claude: "mcp__hub__", gemini: "mcp_hub_" };
const call = (provider, name, args) => `[[tool:${PREFIX[provider]}${name}:${JSON.stringify(args)}]]`;

function runTool(provider, name, args) {
  // The weather result asks the model for the time next: a second step of the loop.
  if (name === "get_weather") return `sunny in ${args.city} ${call(provider, "get_time", { city: args.city })}`;
  return `12:00 in ${args.city}`;
}

function model(provider) {
  return new ChatOpenAI({
    model: provider,
    apiKey: API_KEY,
    configuration: { baseURL: `${hub.baseUrl}/v1` },
    maxRetries: 0,
  }).bindTools(tools);
}

async function agentLoop(provider, step) {
  const messages = [new HumanMessage(`Plan a day in Oslo. ${call(provider, "get_weather", { city: "Oslo" })}`)];
  const called = [];
  for (let i = 0; i < 5; i++) {
    const ai = await step(messages);
    if (!ai.tool_calls?.length) return { answer: ai.content, called };
    messages.push(ai);
    for (const tc of ai.tool_calls) {
      called.push(tc.name);
      messages.push(new ToolMessage({ tool_call_id: tc.id, content: runTool(provider, tc.name, tc.args) }));
    }
  }
  throw new Error("the agent did not finish");
}

for (const provider of ["claude", "gemini"]) {
  test(`${provider}: a two-step agent loop with invoke`, async () => {
    const m = model(provider);
    const { answer, called } = await agentLoop(provider, (messages) => m.invoke(messages));
    assert.deepEqual(called, ["get_weather", "get_time"]);
    assert.equal(answer, "tool result: 12:00 in Oslo");
  });

  test(`${provider}: a two-step agent loop with stream`, async () => {
    const m = model(provider);
    const { answer, called } = await agentLoop(provider, async (messages) => {
      let whole;
      for await (const chunk of await m.stream(messages)) whole = whole ? whole.concat(chunk) : chunk;
      return whole;
    });
    assert.deepEqual(called, ["get_weather", "get_time"]);
    assert.equal(answer, "tool result: 12:00 in Oslo");
  });
}
