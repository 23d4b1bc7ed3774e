#!/usr/bin/env bash
# Finds the plan that was reviewed for a merged commit: the pull request the commit came
# from, the plan workflow's run on that pull request's last head commit, and its saved plan.
#
#   fetch-plan.sh MERGED_SHA OUT_DIR
#
# Needs GH_REPO and GH_TOKEN. Fails, saying to re-plan, when there is no such plan: nothing
# is applied that was not planned and shown in a pull request.
set -euo pipefail

sha=${1:?usage: fetch-plan.sh MERGED_SHA OUT_DIR}
out=${2:?usage: fetch-plan.sh MERGED_SHA OUT_DIR}
: "${GH_REPO:?GH_REPO is not set}"
workflow=${PLAN_WORKFLOW:-svcacct-plan.yml}

replan() {
    echo "::error::$1. Nothing was applied. Re-plan: open a pull request with the change (or re-run its svcacct plan workflow), review the plan comment and merge it."
    exit 1
}

head_sha=$(gh api "repos/$GH_REPO/commits/$sha/pulls" --jq '.[0].head.sha // empty')
[ -n "$head_sha" ] || replan "commit $sha did not come from a pull request, so no plan was reviewed for it"

run_id=$(gh run list --workflow "$workflow" --commit "$head_sha" --status success \
    --json databaseId --jq '.[0].databaseId // empty')
[ -n "$run_id" ] || replan "no successful $workflow run for the pull request's head commit $head_sha"

mkdir -p "$out"
gh run download "$run_id" --name svcacct-plan --dir "$out" ||
    replan "run $run_id has no svcacct-plan artifact (it may have expired)"
[ -f "$out/plan.json" ] || replan "run $run_id's artifact has no plan.json"
echo "reviewed plan of $head_sha (run $run_id) is in $out/plan.json"
