//! The CI files init writes: examples/github-actions (plan on pull requests, apply on merge,
//! nightly drift), its scripts and the action that installs svcacct, pointed at the config.

/// The CI of examples/github-actions: plan on pull requests, apply on merge, nightly drift.
/// The workflows call the scripts, and the action that installs svcacct, by these paths.
pub(super) const CI_FILES: [(&str, &str); 11] = [
    (
        ".github/workflows/svcacct-plan.yml",
        include_str!("../../../examples/github-actions/svcacct-plan.yml"),
    ),
    (
        ".github/workflows/svcacct-apply.yml",
        include_str!("../../../examples/github-actions/svcacct-apply.yml"),
    ),
    (
        ".github/workflows/svcacct-drift.yml",
        include_str!("../../../examples/github-actions/svcacct-drift.yml"),
    ),
    (
        ".github/svcacct/plan.sh",
        include_str!("../../../examples/github-actions/scripts/plan.sh"),
    ),
    (
        ".github/svcacct/post-comment.sh",
        include_str!("../../../examples/github-actions/scripts/post-comment.sh"),
    ),
    (
        ".github/svcacct/fetch-plan.sh",
        include_str!("../../../examples/github-actions/scripts/fetch-plan.sh"),
    ),
    (
        ".github/svcacct/apply.sh",
        include_str!("../../../examples/github-actions/scripts/apply.sh"),
    ),
    (
        ".github/svcacct/drift.sh",
        include_str!("../../../examples/github-actions/scripts/drift.sh"),
    ),
    (
        ".github/actions/svcacct/action.yml",
        include_str!("../../../.github/actions/svcacct/action.yml"),
    ),
    (
        ".github/actions/svcacct/install.sh",
        include_str!("../../../.github/actions/svcacct/install.sh"),
    ),
    (
        ".github/actions/svcacct/run.sh",
        include_str!("../../../.github/actions/svcacct/run.sh"),
    ),
];

/// The CI files, pointed at the config: the directory when it is stamped from a template.
pub(super) fn ci_files(config_arg: &str) -> impl Iterator<Item = (String, String)> + '_ {
    CI_FILES.iter().map(move |(name, text)| {
        let text = text.replace(
            "SVCACCT_CONFIG: svcacct.yaml",
            &format!("SVCACCT_CONFIG: {config_arg}"),
        );
        (name.to_string(), text)
    })
}
