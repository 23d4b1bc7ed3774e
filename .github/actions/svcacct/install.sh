#!/usr/bin/env bash
# Installs svcacct for the action: from crates.io with `cargo install --locked`, or a
# release's Linux binary verified against the release's SHA256SUMS (and, when given, against
# a SHA-256 pinned in the workflow), or not at all.
#
# Reads SVCACCT_INSTALL (cargo|release|skip), SVCACCT_INSTALL_VERSION, SVCACCT_RELEASE_URL,
# SVCACCT_RELEASE_SHA256. Puts the binary's directory on $GITHUB_PATH when it is set.
set -euo pipefail

mode=${SVCACCT_INSTALL:-cargo}
version=${SVCACCT_INSTALL_VERSION:?the version to install is not set}
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]]; then
    echo "::error::invalid svcacct version: $version" >&2
    exit 1
fi

case "$mode" in
    skip)
        command -v svcacct >/dev/null || {
            echo "::error::install: skip, but svcacct is not on PATH" >&2
            exit 1
        }
        ;;
    cargo)
        cargo install --locked svcacct --version "=$version"
        ;;
    release)
        base=${SVCACCT_RELEASE_URL:-}
        # Used from another repository, the action knows where it comes from; a local copy
        # (uses: ./...) does not, and must be told.
        if [ -z "$base" ] && [ -n "${SVCACCT_ACTION_REPOSITORY:-}" ]; then
            base="https://github.com/$SVCACCT_ACTION_REPOSITORY/releases/download/v$version"
        fi
        if [ -z "$base" ]; then
            echo "::error::install: release needs release-url (https://github.com/OWNER/svcacct/releases/download/v$version)" >&2
            exit 1
        fi
        case "$(uname -s)-$(uname -m)" in
            Linux-x86_64 | Linux-amd64) target=x86_64-unknown-linux-gnu ;;
            Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
            *)
                echo "::error::no svcacct release binary for $(uname -s) $(uname -m); use install: cargo" >&2
                exit 1
                ;;
        esac
        asset="svcacct-$version-$target.tar.gz"
        work=$(mktemp -d "${RUNNER_TEMP:-/tmp}/svcacct-install.XXXXXX")
        fetch() { curl --fail --silent --show-error --location --proto '=https,file' --retry 3 -o "$2" "$base/$1"; }
        fetch SHA256SUMS "$work/SHA256SUMS"
        fetch "$asset" "$work/$asset"
        # Exactly the asset's line, so a SHA256SUMS without it fails instead of passing.
        grep -E "^[0-9a-f]{64}  $asset\$" "$work/SHA256SUMS" >"$work/expected" || {
            echo "::error::SHA256SUMS at $base does not list $asset" >&2
            exit 1
        }
        (cd "$work" && sha256sum --check --strict "$work/expected") || {
            echo "::error::$asset does not match its SHA-256 in SHA256SUMS; not installed" >&2
            exit 1
        }
        if [ -n "${SVCACCT_RELEASE_SHA256:-}" ]; then
            actual=$(sha256sum "$work/$asset" | cut -d' ' -f1)
            if [ "$actual" != "$SVCACCT_RELEASE_SHA256" ]; then
                echo "::error::$asset has SHA-256 $actual, not the pinned $SVCACCT_RELEASE_SHA256; not installed" >&2
                exit 1
            fi
        fi
        tar -xzf "$work/$asset" -C "$work"
        bin="$work/svcacct-$version-$target"
        "$bin/svcacct" --version
        if [ -n "${GITHUB_PATH:-}" ]; then
            echo "$bin" >>"$GITHUB_PATH"
        fi
        echo "installed svcacct $version ($target) in $bin"
        ;;
    *)
        echo "::error::install must be cargo, release or skip, not $mode" >&2
        exit 1
        ;;
esac
