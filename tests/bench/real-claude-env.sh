# Sourced by the bench scripts that run the hub over the real claude: in the current directory
# (a scratch directory of the caller's), starts the fake model servers and writes `bin/claude`,
# the pinned claude pointed at the fake Anthropic server; makes `home` and `scratch`.
# Needs `$root` (the repository) and the caller's EXIT trap to stop its background jobs.
# Defines `free_port` and `start_hub`.
"$root/target/debug/fake-models" > fakes.txt &
until [ -s fakes.txt ]; do sleep 0.1; done
anthropic=$(tr ' ' '\n' < fakes.txt | sed -n 's/^anthropic=//p')

mkdir -p bin home scratch
chmod 700 scratch
printf '#!/bin/sh\nexport ANTHROPIC_BASE_URL=%s\nexec %s "$@"\n' \
  "$anthropic" "$root/tests/cli/node_modules/.bin/claude" > bin/claude
chmod +x bin/claude

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_hub PORT SETTINGS: writes hub.toml (claude through bin/claude with the given extra
# settings, one per line; gemini off) and starts the release hub on it in the background, with
# only PATH, a private HOME and a test OAuth token in its environment. Sets `hub_pid`.
start_hub() {
  cat > hub.toml <<TOML
listen = "127.0.0.1:$1"
scratch_dir = "$PWD/scratch"
[providers.claude]
kind = "claude"
command = "$PWD/bin/claude"
$2
[providers.gemini]
kind = "gemini"
enabled = false
TOML
  env -i PATH="$PATH" HOME="$PWD/home" CLAUDE_CODE_OAUTH_TOKEN=test-oauth-token \
    "$root/target/release/llm-mcp-hub" serve --config hub.toml > hub.log 2>&1 &
  hub_pid=$!
}
