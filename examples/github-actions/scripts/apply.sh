#!/usr/bin/env bash
# Applies the reviewed plan, exactly it: `svcacct apply PLAN` refuses, changing nothing, when
# the organization moved since the plan was made, the config on this commit is not the one
# planned, or the file was edited. Then the job fails and says to re-plan.
#
#   apply.sh CONFIG PLAN_FILE
set -euo pipefail

config=${1:?usage: apply.sh CONFIG PLAN_FILE}
plan=${2:?usage: apply.sh CONFIG PLAN_FILE}

if [ ! -f "$plan" ]; then
    echo "::error::no saved plan at $plan. Nothing was applied. Re-plan the change in a pull request and merge it."
    exit 1
fi
if ! svcacct apply "$plan" -c "$config"; then
    echo "::error::svcacct did not apply the reviewed plan (see the reason above). svcacct applies only what a saved plan holds, so nothing unreviewed was applied. If the plan is stale, re-plan: re-run the svcacct plan workflow on a pull request, review the new comment and merge it."
    exit 1
fi
echo "applied the reviewed plan"
