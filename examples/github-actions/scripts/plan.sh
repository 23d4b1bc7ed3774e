#!/usr/bin/env bash
# Plans a pull request: saves the plan for the apply on merge and writes the comment.
#
#   plan.sh CONFIG OUT_DIR
#
# Writes OUT_DIR/plan.json (the saved plan `svcacct apply` takes after the merge: no secret in
# it), OUT_DIR/comment.md (the review comment, within GitHub's size limit) and
# OUT_DIR/plan.txt (the full plan, for the artifact when the comment is truncated). Sets
# `changes=true|false` in $GITHUB_OUTPUT when there is one. Exits 0 whether or not there are
# changes, 1 when no plan could be made.
set -euo pipefail

config=${1:?usage: plan.sh CONFIG OUT_DIR}
out=${2:?usage: plan.sh CONFIG OUT_DIR}
mkdir -p "$out"

code=0
svcacct plan -c "$config" --out "$out/plan.json" --format markdown --detailed-exitcode \
    >"$out/comment.md" || code=$?
case "$code" in
    0) changes=false ;;
    2) changes=true ;;
    *)
        echo "::error::svcacct plan failed (exit $code); see the log above"
        exit 1
        ;;
esac
svcacct show "$out/plan.json" --format text --color never >"$out/plan.txt"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    echo "changes=$changes" >>"$GITHUB_OUTPUT"
fi
echo "plan saved to $out/plan.json (changes: $changes)"
