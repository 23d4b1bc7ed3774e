#!/usr/bin/env bash
# Runs one svcacct command for the action and reports its exit code (and, for a plan,
# whether it has changes) as step outputs.
#
# Reads SVCACCT_COMMAND (plan|apply|validate), SVCACCT_CONFIG_PATH, SVCACCT_ARGS (split on
# whitespace), SVCACCT_PLAN_FILE (apply) and SVCACCT_OUTPUT (a file for standard output).
# A plan exits 0 with or without changes; any other failure fails the step.
set -euo pipefail

command=${SVCACCT_COMMAND:?}
config=${SVCACCT_CONFIG_PATH:-svcacct.yaml}
# Split on whitespace only: `read -a` does no globbing and runs nothing.
read -r -a extra <<<"${SVCACCT_ARGS:-}"

case "$command" in
    plan) argv=(plan -c "$config" --detailed-exitcode) ;;
    apply)
        argv=(apply)
        if [ -n "${SVCACCT_PLAN_FILE:-}" ]; then
            argv+=("$SVCACCT_PLAN_FILE")
        fi
        argv+=(-c "$config")
        ;;
    validate) argv=(validate -c "$config") ;;
    *)
        echo "::error::command must be plan, apply, validate or install, not $command" >&2
        exit 1
        ;;
esac
argv+=("${extra[@]}")

code=0
if [ -n "${SVCACCT_OUTPUT:-}" ]; then
    mkdir -p "$(dirname "$SVCACCT_OUTPUT")"
    svcacct "${argv[@]}" >"$SVCACCT_OUTPUT" || code=$?
    cat "$SVCACCT_OUTPUT"
else
    svcacct "${argv[@]}" || code=$?
fi

changes=false
if [ "$command" = plan ] && [ "$code" -eq 2 ]; then
    changes=true
    code_ok=1
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
    {
        echo "exit-code=$code"
        echo "changes=$changes"
    } >>"$GITHUB_OUTPUT"
fi
if [ "$code" -ne 0 ] && [ -z "${code_ok:-}" ]; then
    echo "::error::svcacct $command failed (exit $code); see the log above" >&2
    exit 1
fi
echo "svcacct $command done (exit $code, changes: $changes)"
