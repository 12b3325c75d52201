# Sourced by the bench scripts that run the hub over the real claude: in the current directory
# (a scratch directory of the caller's), starts the fake model servers and writes `bin/claude`,
# the pinned claude pointed at the fake Anthropic server; makes `home` and `scratch`.
# Needs `$root` (the repository) and the caller's EXIT trap to stop its background jobs.
# Defines `free_port`.
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
