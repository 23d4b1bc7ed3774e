#!/usr/bin/env bash
# Posts the plan comment on a pull request, or updates the one posted before: the comment's
# first line is a hidden marker naming the organization, so each organization keeps one
# comment that every push rewrites instead of a new one per push.
#
#   post-comment.sh COMMENT_FILE
#
# Needs GH_REPO (owner/name), PR_NUMBER and GH_TOKEN (for the `gh` CLI) in the environment.
set -euo pipefail

file=${1:?usage: post-comment.sh COMMENT_FILE}
: "${GH_REPO:?GH_REPO is not set}"
: "${PR_NUMBER:?PR_NUMBER is not set}"

marker=$(head -n 1 "$file")
case "$marker" in
    "<!-- svcacct-plan: "*" -->") ;;
    *)
        echo "::error::$file does not start with the svcacct plan marker; was it made by svcacct plan --format markdown?"
        exit 1
        ;;
esac

# Every page of the pull request's comments; the first one of ours that carries the marker.
existing=$(gh api --paginate "repos/$GH_REPO/issues/$PR_NUMBER/comments" |
    jq -r --arg marker "$marker" '.[] | select(.body | startswith($marker)) | .id' |
    head -n 1)

if [ -n "$existing" ]; then
    gh api --method PATCH "repos/$GH_REPO/issues/comments/$existing" -F "body=@$file" >/dev/null
    echo "updated plan comment $existing on #$PR_NUMBER"
else
    gh api --method POST "repos/$GH_REPO/issues/$PR_NUMBER/comments" -F "body=@$file" >/dev/null
    echo "posted the plan comment on #$PR_NUMBER"
fi
