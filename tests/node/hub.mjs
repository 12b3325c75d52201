// Starts the real llm-mcp-hub binary with the real CLIs (tests/cli) against the fake model
// servers, as tests/python/conftest.py does. Needs `cargo build --workspace --bins` and
// `npm ci --prefix tests/cli` (scripts/test does both). Paths can be overridden with
// LLM_MCP_HUB_BIN_DIR and LLM_MCP_HUB_TEST_CLI_BIN.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN_DIR = process.env.LLM_MCP_HUB_BIN_DIR ?? join(ROOT, "target", "debug");
const CLI_BIN = process.env.LLM_MCP_HUB_TEST_CLI_BIN ?? join(ROOT, "tests", "cli", "node_modules", ".bin");

async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  return port;
}

function script(path, text) {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

/** Starts a hub that requires `apiKey` (claude, and gemini when asked). Returns { baseUrl, stop(), log() }. */
export async function startHub({ apiKey, gemini = false }) {
  for (const needed of [join(BIN_DIR, "llm-mcp-hub"), join(BIN_DIR, "fake-models"), join(CLI_BIN, "claude")]) {
    if (!existsSync(needed)) throw new Error(`${needed} is missing: run scripts/test`);
  }
  // Not below /tmp: gemini ignores lock-down settings below a world-writable directory.
  const root = join(ROOT, "target", "node-e2e");
  mkdirSync(root, { recursive: true });
  const work = mkdtempSync(join(root, "hub-"));

  // gemini runs on its Google login against a fake Google (written to work/google; needs root).
  const fakeArgs = gemini ? ["--google", join(work, "google"), "--gemini-cli", join(CLI_BIN, "gemini")] : [];
  const fake = spawn(join(BIN_DIR, "fake-models"), fakeArgs, { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = await once(createInterface({ input: fake.stdout }), "line");
  const fakes = Object.fromEntries(line.trim().split(/\s+/).map((part) => part.split(/=(.*)/s).slice(0, 2)));

  const bin = join(work, "bin");
  mkdirSync(bin);
  script(join(bin, "claude"), `#!/bin/sh\nexport ANTHROPIC_BASE_URL=${fakes.anthropic}\nexec ${join(CLI_BIN, "claude")} "$@"\n`);
  mkdirSync(join(work, "home"));
  const geminiHome = gemini ? fakes["gemini-home"] : join(work, "gemini-home");

  const port = await freePort();
  const sha256 = createHash("sha256").update(apiKey).digest("hex");
  const config = join(work, "hub.toml");
  writeFileSync(config,
    `listen = "127.0.0.1:${port}"\nscratch_dir = "${join(work, "scratch")}"\n` +
    `[[api_keys]]\nid = "node"\nsha256 = "${sha256}"\n` +
    `[providers.claude]\nkind = "claude"\ncommand = "${join(bin, "claude")}"\n` +
    (gemini
      ? `[providers.gemini]\nkind = "gemini"\ncommand = "${fakes["gemini-cli"]}"\n`
      : `[providers.gemini]\nkind = "gemini"\nenabled = false\n`));
  const logPath = join(work, "hub.log");
  const logFd = openSync(logPath, "w");
  const hub = spawn(join(BIN_DIR, "llm-mcp-hub"), ["serve", "--config", config], {
    env: {
      PATH: process.env.PATH,
      HOME: join(work, "home"),
      CLAUDE_CODE_OAUTH_TOKEN: "test-oauth-token",
      GEMINI_CLI_HOME: geminiHome,
    },
    stdio: ["ignore", logFd, logFd],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logPath, "utf8");
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`hub did not start:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    baseUrl,
    log,
    async stop() {
      hub.kill("SIGTERM");
      if (hub.exitCode === null) await once(hub, "exit");
      fake.kill("SIGTERM");
    },
  };
}
