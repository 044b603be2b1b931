#!/usr/bin/env bash
# Installs code-server (VS Code's workbench and extension host, served to a browser) into a cache folder outside
# the repo, for the host scenario in test/host/. Works without reaching anything but the npm registry and Debian:
# the ripgrep binary code-server wants is repacked from Debian's package into the cache @vscode/ripgrep checks
# before it would download one. Idempotent: exits early when that code-server already starts.
#
# Prints the path of the code-server launcher on its last line.
# Environment: KVLENS_HOST_CACHE (default ~/.cache/kvlens-host), CODE_SERVER_VERSION (default 4.100.3, the newest
# release whose server runs on Node 20).
set -euo pipefail

cache_dir="${KVLENS_HOST_CACHE:-$HOME/.cache/kvlens-host}"
version="${CODE_SERVER_VERSION:-4.100.3}"
install_dir="$cache_dir/code-server-$version"
launcher="$install_dir/node_modules/code-server/out/node/entry.js"
stamp="$install_dir/.kvlens-installed"

say() { printf 'install-code-server: %s\n' "$*" >&2; }

# code-server writes a default config.yaml under $XDG_CONFIG_HOME on every start; keep that in the cache.
export XDG_CONFIG_HOME="$cache_dir/config"

if [[ -f "$stamp" && -f "$launcher" ]] && node "$launcher" --version >/dev/null 2>&1; then
  say "code-server $version already installed in $install_dir"
  echo "$install_dir/node_modules/.bin/code-server"
  exit 0
fi

need_apt=()
command -v rg >/dev/null 2>&1 || need_apt+=(ripgrep)
[[ -e /usr/include/gssapi/gssapi.h ]] || need_apt+=(libkrb5-dev)
command -v g++ >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ((${#need_apt[@]})); then
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# @vscode/ripgrep's postinstall looks in $TMPDIR/vscode-ripgrep-cache-<its version>/ for the release tarball before
# downloading it; a tarball holding Debian's rg at its root satisfies it.
tmp_root="${TMPDIR:-/tmp}"
for ripgrep_pkg_version in 1.15.11; do
  rg_cache="$tmp_root/vscode-ripgrep-cache-$ripgrep_pkg_version"
  rg_tarball="$rg_cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
  if [[ ! -s "$rg_tarball" ]]; then
    staging="$(mktemp -d)"
    cp "$(command -v rg)" "$staging/rg"
    mkdir -p "$rg_cache"
    tar -czf "$rg_tarball" -C "$staging" rg
    rm -rf "$staging"
    say "repacked $(command -v rg) as $rg_tarball"
  fi
done

mkdir -p "$install_dir"
cd "$install_dir"
[[ -f package.json ]] || printf '{ "name": "kvlens-host-code-server", "private": true }\n' > package.json
say "npm install code-server@$version in $install_dir (builds native modules; takes minutes)"
# --foreground-scripts shows the native builds' output and runs the postinstalls in order; ignore-scripts is forced
# off in case a user or project config turned it on. code-server's postinstall refuses to run as root unless npm
# says unsafe-perm, a setting npm 7+ no longer has, so it is passed as the environment variable the script reads.
# node-pty's postinstall runs `npx node-gyp`, which a `yes = false` npm config would cancel.
npm_config_unsafe_perm=true npm_config_yes=true npm install --no-audit --no-fund --ignore-scripts=false --foreground-scripts "code-server@$version" >&2

# A skipped postinstall leaves code-server half installed yet still printing --version; check what it runs on.
cs_dir="$install_dir/node_modules/code-server"
problems=()
[[ -x "$cs_dir/lib/vscode/node_modules/@vscode/ripgrep/bin/rg" ]] \
  || problems+=("ripgrep binary missing (lib/vscode/node_modules/@vscode/ripgrep/bin/rg)")
ls "$cs_dir"/lib/vscode/node_modules/node-pty/build/Release/pty.node >/dev/null 2>&1 \
  || problems+=("node-pty native module not built")
ls "$cs_dir"/lib/vscode/node_modules/@vscode/spdlog/build/Release/*.node >/dev/null 2>&1 \
  || problems+=("@vscode/spdlog native module not built")
if ((${#problems[@]})); then
  say "install incomplete:"
  printf '  %s\n' "${problems[@]}" >&2
  exit 1
fi
node "$launcher" --version >&2
touch "$stamp"
say "code-server $version installed in $install_dir"
echo "$install_dir/node_modules/.bin/code-server"
