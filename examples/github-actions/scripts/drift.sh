#!/usr/bin/env bash
# Checks the live organization against the config on main. On drift it opens an issue, or
# updates the open one (found by its label), with the plan that would undo it (which says who
# changed each object live, where the backend keeps an audit log), and fails.
#
#   drift.sh CONFIG OUT_DIR
#
# Needs GH_REPO and GH_TOKEN. Exits 0 when the organization matches, 1 on drift or error.
set -euo pipefail

config=${1:?usage: drift.sh CONFIG OUT_DIR}
out=${2:?usage: drift.sh CONFIG OUT_DIR}
: "${GH_REPO:?GH_REPO is not set}"
label=${DRIFT_LABEL:-svcacct-drift}
mkdir -p "$out"

code=0
svcacct plan -c "$config" --format markdown --detailed-exitcode >"$out/drift.md" || code=$?
case "$code" in
    0)
        echo "no drift: the live organization matches main"
        exit 0
        ;;
    2) ;;
    *)
        echo "::error::svcacct plan failed (exit $code); see the log above"
        exit 1
        ;;
esac

org=$(head -n 1 "$out/drift.md" | sed -n 's/^<!-- svcacct-plan: \(.*\) -->$/\1/p')
issue=$(gh issue list --repo "$GH_REPO" --label "$label" --state open --json number \
    --jq '.[0].number // empty')
if [ -n "$issue" ]; then
    gh issue edit "$issue" --repo "$GH_REPO" --body-file "$out/drift.md" >/dev/null
    echo "updated drift issue #$issue"
else
    gh issue create --repo "$GH_REPO" --label "$label" \
        --title "svcacct: the live organization ${org:-?} differs from main" \
        --body-file "$out/drift.md" >/dev/null
    echo "opened a drift issue"
fi
echo "::error::the live organization differs from the config on main; see the drift issue"
exit 1
