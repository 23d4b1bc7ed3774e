//! The `secrets` section: the key files' directory and every recipient, from the list and the
//! recipients file.

use std::path::{Path, PathBuf};

use crate::config::SecretsSettings;
use crate::config::diagnostic::Severity;
use crate::config::files;
use crate::config::load::Merged;
use crate::config::raw::Loc;
use crate::secrets::{Recipient, parse_recipient, parse_recipients_file};

use super::findings::{Findings, at};

/// Where key files go and to whom they are encrypted. Keys need at least one recipient.
pub(super) fn secrets(
    f: &mut Findings<'_>,
    merged: &Merged,
    base_dir: &Path,
    first_key: Option<(usize, (u64, u64))>,
) -> SecretsSettings {
    let raw_secrets = merged.secrets.as_ref().map(|s| (s.file, &s.item.value));
    let mut parsed = Vec::new();
    let mut recipients = Vec::new();
    let mut recipients_file = None;
    // Whether a recipient was refused: then "no recipients" would only repeat that error.
    let errors_before = f.all.len();
    if let Some((file, s)) = raw_secrets {
        for r in &s.recipients {
            match parse_recipient(&r.value) {
                Ok(p) => parsed.push(p),
                Err(e) => f.error(file, at(r), e),
            }
            recipients.push(r.value.clone());
        }
        if let Some(rf) = &s.recipients_file {
            parsed.extend(recipients_file_of(f, file, base_dir, rf));
            recipients_file = Some(PathBuf::from(&rf.value));
        }
    }
    if parsed.is_empty()
        && let Some((file, place)) = first_key
        && f.all.len() == errors_before
    {
        f.push(
            Severity::Error,
            file,
            place,
            "keys are declared but no recipients are configured, so no key file could be encrypted"
                .into(),
            Some("add age public keys under `secrets: { recipients: [age1…] }`".into()),
        );
    }
    SecretsSettings {
        dir: base_dir.join(
            raw_secrets
                .and_then(|(_, s)| s.dir.as_deref())
                .unwrap_or("secrets"),
        ),
        recipients,
        recipients_file,
        parsed,
    }
}

/// The recipients of the recipients file `rf` names, with an error at its place when it cannot
/// be read or parsed.
fn recipients_file_of(
    f: &mut Findings<'_>,
    file: usize,
    base_dir: &Path,
    rf: &Loc<String>,
) -> Vec<Recipient> {
    let path = base_dir.join(&rf.value);
    match files::read_confined(base_dir, &rf.value, files::MAX_RECIPIENTS_FILE) {
        Ok(text) => match parse_recipients_file(&text) {
            Ok(more) => return more,
            Err((line, e)) => f.error(
                file,
                at(rf),
                format!("line {line} of recipients file {}: {e}", path.display()),
            ),
        },
        Err(e) => f.push(
            Severity::Error,
            file,
            at(rf),
            format!("invalid recipients file: {e}"),
            Some(
                "a recipients file is a regular file of at most 64 KiB in the config's directory tree"
                    .into(),
            ),
        ),
    }
    Vec::new()
}
