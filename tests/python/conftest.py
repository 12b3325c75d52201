"""Starts the real llm-mcp-hub binary, the real CLIs (tests/cli) and the fake model servers.

Needs: `cargo build -p llm-mcp-hub -p fake-models` and `npm ci --prefix tests/cli`
(scripts/test does both). Paths can be overridden with LLM_MCP_HUB_BIN_DIR and
LLM_MCP_HUB_TEST_CLI_BIN.
"""

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("LLM_MCP_HUB_BIN_DIR", ROOT / "target" / "debug"))
CLI_BIN = Path(os.environ.get("LLM_MCP_HUB_TEST_CLI_BIN", ROOT / "tests" / "cli" / "node_modules" / ".bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


class RunningHub:
    def __init__(self, base_url: str, fakes: dict, log: Path):
        self.base_url = base_url
        self.fakes = fakes
        self.log = log
        self.api_key: str | None = None

    def fake_requests(self, vendor: str) -> list:
        with urllib.request.urlopen(self.fakes[vendor] + "/_fake/requests") as r:
            return json.load(r)

    def metric(self, name: str, **labels) -> float:
        """The value of one sample of /metrics (0 when absent)."""
        with urllib.request.urlopen(self.base_url + "/metrics") as r:
            text = r.read().decode()
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.base_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)


@pytest.fixture(scope="session")
def hub():
    with running_hub() as h:
        yield h


# A hub that requires this API key (MCP tests of the bearer check).
API_KEY = "lmh_python_sdk_test_key"


@pytest.fixture(scope="session")
def keyed_hub():
    digest = hashlib.sha256(API_KEY.encode()).hexdigest()
    with running_hub(top=f'[[api_keys]]\nid = "sdk"\nsha256 = "{digest}"\n', gemini=False) as h:
        h.api_key = API_KEY
        yield h


def has_shared_ancestor(path: Path) -> bool:
    """True when a directory above `path` is writable by group or others (such as /tmp)."""
    return any(p.exists() and p.stat().st_mode & 0o022 for p in path.parents)


def private_root() -> Path:
    """Gemini ignores the hub's lock-down settings below a group- or world-writable directory,
    and the hub then refuses it: the build tree unless it lies below one, else the user's cache."""
    in_build = ROOT / "target" / "python-e2e"
    if not has_shared_ancestor(in_build):
        return in_build
    fallback = Path.home() / ".cache" / "llm-mcp-hub-tests" / "python"
    assert not has_shared_ancestor(fallback), f"no private directory for the tests ({in_build}, {fallback})"
    return fallback


@contextlib.contextmanager
def running_hub(top: str = "", gemini: bool = True, claude: str = ""):
    for needed in [BIN_DIR / "llm-mcp-hub", BIN_DIR / "fake-models", CLI_BIN / "claude", CLI_BIN / "gemini"]:
        assert needed.exists(), f"{needed} is missing: run scripts/test"
    root = private_root()
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="hub-", dir=root))

    # gemini runs on its Google login against a fake Google (written to work/google; needs root).
    google = ["--google", work / "google", "--gemini-cli", CLI_BIN / "gemini"] if gemini else []
    fake = subprocess.Popen([BIN_DIR / "fake-models", *google], stdout=subprocess.PIPE, text=True)
    line = fake.stdout.readline().split()
    fakes = dict(part.split("=", 1) for part in line)

    bin_dir = work / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "claude",
                 f"#!/bin/sh\nexport ANTHROPIC_BASE_URL={fakes['anthropic']}\nexec {CLI_BIN / 'claude'} \"$@\"\n")
    gemini_home = Path(fakes["gemini-home"]) if gemini else work / "gemini-home"
    (work / "home").mkdir()

    port = free_port()
    config = work / "hub.toml"
    gemini_provider = (f'[providers.gemini]\nkind = "gemini"\ncommand = "{fakes["gemini-cli"]}"\n' if gemini
                       else '[providers.gemini]\nkind = "gemini"\nenabled = false\n')
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nscratch_dir = "{work / "scratch"}"\n{top}'
        f'[providers.claude]\nkind = "claude"\ncommand = "{bin_dir / "claude"}"\n{claude}'
        + gemini_provider)
    log = work / "hub.log"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work / "home"),
        "CLAUDE_CODE_OAUTH_TOKEN": "test-oauth-token",
        "GEMINI_CLI_HOME": str(gemini_home),
    }
    if "RUST_LOG" in os.environ:  # for reading a failure in hub.log
        env["RUST_LOG"] = os.environ["RUST_LOG"]
    with open(log, "w") as log_file:
        proc = subprocess.Popen([BIN_DIR / "llm-mcp-hub", "serve", "--config", config],
                                env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            urllib.request.urlopen(base + "/healthz")
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("hub did not start:\n" + log.read_text())
            time.sleep(0.05)
    try:
        yield RunningHub(base, fakes, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        fake.terminate()
        fake.wait(timeout=10)
