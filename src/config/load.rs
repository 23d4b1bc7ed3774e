//! Reading config files and merging a directory of them into one, so that every name is
//! defined once across all files.

use crate::backend::BackendConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::diagnostic::{Diagnostic, Severity, Source};
use super::raw::{Loc, RawConfig, RawPolicy, RawRole, RawSecrets, RawServiceAccount, RawTeam};

/// Something defined in one of the files: which file, and the value with its location.
pub struct Defined<T> {
    pub file: usize,
    pub item: Loc<T>,
}

/// All files' contents in one place, every definition tagged with its file.
pub struct Merged {
    pub sources: Vec<Source>,
    pub organization: Option<Defined<String>>,
    pub backend: Option<Defined<BackendConfig>>,
    pub secrets: Option<Defined<RawSecrets>>,
    pub policy: Option<Defined<RawPolicy>>,
    /// Policy rules of every file, in file order, each with its file.
    pub rules: Vec<(usize, Loc<super::raw::RawRule>)>,
    pub roles: Vec<Defined<(String, RawRole)>>,
    pub teams: Vec<Defined<(String, RawTeam)>>,
    pub service_accounts: Vec<Defined<(String, RawServiceAccount)>>,
}

/// A digest of the config at `path` as [`read_sources`] reads it: each file's name and text,
/// in name order. A saved plan records it, so applying it after the config changed is refused.
/// Names without their directory, so a checkout elsewhere (CI) gives the same digest.
pub fn config_digest(path: &Path) -> Result<String, ConfigError> {
    use sha2::{Digest, Sha256};
    let (_, sources) = read_sources(path)?;
    let mut h = Sha256::new();
    for s in &sources {
        let name = s.path.file_name().unwrap_or_default().to_string_lossy();
        h.update(format!("{}\0{}\0", name, s.text.len()).as_bytes());
        h.update(s.text.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

/// The base directory and the files to read: the file itself, or a directory's YAML files in
/// name order.
pub fn read_sources(path: &Path) -> Result<(PathBuf, Vec<Source>), ConfigError> {
    let read_err = |p: &Path, source| ConfigError::Read {
        path: p.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e))?;
    let (base, paths) = if meta.is_dir() {
        // Every `*.yaml`/`*.yml` entry is read, whatever it is: one skipped because it is a
        // dangling link or a FIFO would have its objects planned for deletion.
        let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| read_err(path, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| read_err(path, e)))
            .filter(|p| {
                p.as_ref().map_or(true, |p| {
                    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                })
            })
            .collect::<Result<_, _>>()?;
        paths.sort();
        // Policy rules may live in `policy/*.yaml` beside the config's own files.
        paths.extend(policy_files(&path.join("policy")).map_err(|e| read_err(path, e))?);
        if paths.is_empty() {
            return Err(ConfigError::EmptyDirectory {
                path: path.to_path_buf(),
            });
        }
        (path.to_path_buf(), paths)
    } else {
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        (parent, vec![path.to_path_buf()])
    };
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let sources = paths
        .into_iter()
        .map(|p| {
            // A file named on the command line is the caller's choice (`-c <(generate)` is a
            // pipe); the entries of a directory must be regular files.
            let text = if meta.is_dir() {
                super::files::read_regular(&p)
            } else {
                std::fs::read_to_string(&p)
            }
            .map_err(|e| read_err(&p, e))?;
            Ok(Source { path: p, text })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    Ok((base, sources))
}

/// The `*.yaml`/`*.yml` files of a config directory's `policy/` directory, in name order;
/// none when there is no such directory.
fn policy_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Where in the merged list each name sits, per kind, to report a second definition.
#[derive(Default)]
struct Index {
    roles: HashMap<String, usize>,
    teams: HashMap<String, usize>,
    service_accounts: HashMap<String, usize>,
}

impl Merged {
    /// Merges one parsed file in, noting every name or section defined twice.
    fn add(
        &mut self,
        file: usize,
        raw: RawConfig,
        index: &mut Index,
        errors: &mut Vec<Diagnostic>,
    ) {
        self.add_organization(file, raw.organization, errors);
        set_once(
            &mut self.backend,
            raw.backend,
            file,
            "backend",
            &self.sources,
            errors,
        );
        set_once(
            &mut self.secrets,
            raw.secrets,
            file,
            "secrets",
            &self.sources,
            errors,
        );
        self.add_policy(file, raw.policy, errors);
        extend(
            &mut self.roles,
            &mut index.roles,
            raw.roles.0,
            file,
            "role",
            &self.sources,
            errors,
        );
        extend(
            &mut self.teams,
            &mut index.teams,
            raw.teams.0,
            file,
            "team",
            &self.sources,
            errors,
        );
        extend(
            &mut self.service_accounts,
            &mut index.service_accounts,
            raw.service_accounts.0,
            file,
            "service account",
            &self.sources,
            errors,
        );
    }

    /// The policy section: rules may be spread over files (`policy/*.yaml`); the other
    /// settings are set once.
    fn add_policy(
        &mut self,
        file: usize,
        policy: Option<Loc<RawPolicy>>,
        errors: &mut Vec<Diagnostic>,
    ) {
        let policy = policy.and_then(|mut p| {
            let rules = std::mem::take(&mut p.value.rules);
            self.rules.extend(rules.into_iter().map(|r| (file, r)));
            (p.value.unmanaged.is_some() || p.value.max_delete_percent.is_some()).then_some(p)
        });
        set_once(
            &mut self.policy,
            policy,
            file,
            "policy",
            &self.sources,
            errors,
        );
    }

    /// The organization's name: several files may name it, as long as they agree.
    fn add_organization(
        &mut self,
        file: usize,
        organization: Option<Loc<String>>,
        errors: &mut Vec<Diagnostic>,
    ) {
        if let Some(org) = organization {
            match &self.organization {
                // Several files may name the organization, as long as they agree.
                Some(first) if first.item.value != org.value => errors.push(twice(
                    &self.sources,
                    "organization",
                    &format!(
                        "organization `{}` differs from `{}`",
                        org.value, first.item.value
                    ),
                    first.file,
                    (first.item.line, first.item.column),
                    file,
                    (org.line, org.column),
                )),
                Some(_) => {}
                None => self.organization = Some(Defined { file, item: org }),
            }
        }
    }
}

/// Parses every source and merges them; all syntax errors are reported together.
pub fn parse_and_merge(sources: Vec<Source>) -> Result<Merged, ConfigError> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match parse(source) {
            Ok(raw) => parsed.push((i, raw)),
            Err(d) => errors.push(*d),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let mut merged = Merged {
        sources,
        organization: None,
        backend: None,
        secrets: None,
        policy: None,
        rules: Vec::new(),
        roles: Vec::new(),
        teams: Vec::new(),
        service_accounts: Vec::new(),
    };
    let mut index = Index::default();
    for (file, raw) in parsed {
        merged.add(file, raw, &mut index, &mut errors);
    }
    if errors.is_empty() {
        Ok(merged)
    } else {
        Err(ConfigError::Invalid(errors))
    }
}

fn parse(source: &Source) -> Result<RawConfig, Box<Diagnostic>> {
    let blank = source
        .text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        let mut d = source.diagnostic(
            Severity::Error,
            1,
            1,
            "the config file is empty".to_string(),
        );
        d.help = Some("a config is a mapping that starts with `organization: <name>`".into());
        return Err(Box::new(d));
    }
    let threads = crate::parallel::threads();
    if let Some(raw) = super::split::parse_in_pieces(&source.text, threads, parse_options) {
        return Ok(raw);
    }
    if let Ok(raw) = super::block_yaml::from_str::<RawConfig>(&source.text) {
        return Ok(raw);
    }
    serde_saphyr::from_str_with_options::<RawConfig>(&source.text, parse_options()).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        // The library's message without its own snippet; ours names the file.
        let message = e.without_snippet().to_string();
        // Only a trailing `at line L, column C` is cut; one inside parentheses (an alias's
        // "(used at line …)") is part of the message.
        let message = message
            .rsplit_once(" at line ")
            .filter(|(_, place)| !place.contains(')'))
            .map(|(m, _)| m.to_string())
            .unwrap_or(message);
        // The library suggests a parser option; duplicates are never acceptable here.
        let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        let mut d = source.diagnostic(Severity::Error, line.max(1), column.max(1), message);
        d.help = unknown_field_help(&d.message);
        if d.message.contains("expected mapping") && line <= 1 {
            d.help = Some("a config is a mapping that starts with `organization: <name>`".into());
        }
        Box::new(d)
    })
}

/// For "unknown field `x`, expected one of a, b": the closest of the expected fields (a
/// misspelled policy rule kind is such a field).
fn unknown_field_help(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .strip_prefix(", expected one of ")
        .or_else(|| rest.strip_prefix(", expected "))?;
    let names = expected.split(", ").map(|n| {
        n.trim_matches('`')
            .trim_start_matches("or ")
            .trim_matches('`')
    });
    crate::suggest::closest(field, names).map(|c| format!("did you mean `{c}`?"))
}

/// The parser's defaults, with room for organizations of tens of thousands of accounts. The
/// alias limits stay at their defaults, so an alias bomb still fails fast.
fn parse_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 50_000_000;
    budget.max_nodes = 25_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

fn twice(
    sources: &[Source],
    _what: &str,
    message: &str,
    first_file: usize,
    first: (u64, u64),
    file: usize,
    at: (u64, u64),
) -> Diagnostic {
    let mut d = sources[file].diagnostic(Severity::Error, at.0, at.1, message.to_string());
    d.note = Some(format!(
        "first defined at {}",
        sources[first_file].place(first.0, first.1)
    ));
    d
}

fn set_once<T>(
    slot: &mut Option<Defined<T>>,
    value: Option<Loc<T>>,
    file: usize,
    what: &str,
    sources: &[Source],
    errors: &mut Vec<Diagnostic>,
) {
    let Some(value) = value else { return };
    match slot {
        Some(first) => errors.push(twice(
            sources,
            what,
            &format!("`{what}` is defined twice"),
            first.file,
            (first.item.line, first.item.column),
            file,
            (value.line, value.column),
        )),
        None => *slot = Some(Defined { file, item: value }),
    }
}

fn extend<T>(
    all: &mut Vec<Defined<(String, T)>>,
    index: &mut HashMap<String, usize>,
    entries: Vec<(Loc<String>, T)>,
    file: usize,
    what: &str,
    sources: &[Source],
    errors: &mut Vec<Diagnostic>,
) {
    for (name, value) in entries {
        // Within one file the parser already rejects duplicates; across files we do.
        if let Some(first) = index.get(&name.value).map(|&i| &all[i]) {
            errors.push(twice(
                sources,
                what,
                &format!("{what} `{}` is defined twice", name.value),
                first.file,
                (first.item.line, first.item.column),
                file,
                (name.line, name.column),
            ));
            continue;
        }
        index.insert(name.value.clone(), all.len());
        all.push(Defined {
            file,
            item: Loc {
                value: (name.value, value),
                line: name.line,
                column: name.column,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_big_files_point_at_their_own_line() {
        let mut text = String::from("organization: acme\nservice_accounts:\n");
        for a in 0..5000 {
            text.push_str(&format!("  acct-{a}:\n    description: Account {a} with a longer description\n    keys:\n      k: {{}}\n"));
        }
        // Line of acct-4000's description: 2 header lines, then 4 lines an account.
        let line = 2 + 4 * 4000 + 2;
        text = text.replace(
            "    description: Account 4000 ",
            "    descripton: Account 4000 ",
        );
        let source = Source {
            path: "big.yaml".into(),
            text,
        };
        let d = parse(&source).map(|_| ()).expect_err("unknown field");
        assert_eq!((d.line, d.column), (line as u64, 5), "{d}");
        assert!(d.message.contains("unknown field `descripton`"), "{d}");
    }
}
