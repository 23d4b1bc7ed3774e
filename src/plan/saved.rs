//! Saved plans: `plan --out plan.json` writes what was reviewed, `apply plan.json` applies
//! exactly that. The file says where and against what it was made — the backend (kind and URL
//! or file, never a token), the organization and its revision, a digest of the config, the
//! svcacct version — and carries a checksum of its own content, so an apply can refuse, naming
//! why, a plan that no longer describes what it would do. It holds no secret, hash or key
//! prefix: only what plans show, and the operations, which name keys by id.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Action, Field, Plan, Snapshot};
use crate::address::Address;
use crate::model::LiveOrganization;

/// What a saved plan file's `format` says.
const FORMAT: &str = "svcacct saved plan";

/// A plan as saved to a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format: String,
    pub format_version: u32,
    pub svcacct_version: String,
    /// The backend's kind and location (`local /abs/path.db`, `http https://…`).
    pub backend: String,
    pub organization: String,
    /// The organization's revision the plan was computed at.
    pub revision: u64,
    /// Whether the backend keeps a revision; without one, staleness is a fresh plan that
    /// differs from this one.
    pub backend_has_revision: bool,
    pub config_digest: String,
    pub plan: Plan,
    /// `sha256:` of the file's canonical JSON without this field.
    #[serde(default)]
    pub checksum: String,
}

/// Why a saved plan is refused.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read the plan {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a saved plan: {1}")]
    Unreadable(String, String),
    #[error(
        "plan file {0} was edited after it was made (its checksum does not match); run plan again"
    )]
    Edited(String),
    #[error("plan was made by svcacct {made}, this is svcacct {running}; run plan again")]
    Version { made: String, running: String },
    #[error("plan is for {planned}, the config names {configured}; run plan again")]
    Elsewhere { planned: String, configured: String },
    #[error("the config changed since the plan was made; run plan again")]
    ConfigChanged,
    #[error(
        "plan is stale: organization at revision {live}, plan made at {planned}; run plan again"
    )]
    Stale { live: u64, planned: u64 },
    #[error(
        "plan is stale: the organization changed since the plan was made (the backend keeps no revision, so the plan was made again and differs); run plan again"
    )]
    Differs,
    #[error("plan is stale: {address} changed since the plan was made ({what}); run plan again")]
    Moved { address: String, what: String },
}

fn checksum_of(mut v: Value) -> String {
    if let Value::Object(m) = &mut v {
        m.remove("checksum");
    }
    // serde_json's maps are sorted, so this text is canonical.
    let digest = Sha256::digest(v.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl SavedPlan {
    /// A plan to save, made against `backend` with the config of digest `config_digest`.
    pub fn new(
        plan: Plan,
        backend: String,
        backend_has_revision: bool,
        config_digest: String,
    ) -> SavedPlan {
        SavedPlan {
            format: FORMAT.into(),
            format_version: 1,
            svcacct_version: env!("CARGO_PKG_VERSION").into(),
            backend,
            organization: plan.organization.clone(),
            revision: plan.revision,
            backend_has_revision,
            config_digest,
            plan,
            checksum: String::new(),
        }
    }

    /// The file's text, checksum included.
    pub fn to_text(&self) -> String {
        let mut v = serde_json::to_value(self).expect("a plan serializes");
        let sum = checksum_of(v.clone());
        v["checksum"] = Value::String(sum);
        serde_json::to_string_pretty(&v).expect("a plan serializes") + "\n"
    }

    /// Reads a saved plan file, refusing one that was edited or that another version made.
    pub fn read(path: &std::path::Path) -> Result<SavedPlan, SavedPlanError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Io {
            path: name.clone(),
            source,
        })?;
        SavedPlan::parse(&text, &name)
    }

    /// Reads a saved plan, refusing one whose content does not match its checksum or that
    /// another svcacct version made. `name` is how errors name the file.
    pub fn parse(text: &str, name: &str) -> Result<SavedPlan, SavedPlanError> {
        let unreadable = |e: String| SavedPlanError::Unreadable(name.into(), e);
        let v: Value = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(unreadable(format!("its `format` is not \"{FORMAT}\"")));
        }
        let claimed = v.get("checksum").and_then(Value::as_str).unwrap_or("");
        if claimed != checksum_of(v.clone()) {
            return Err(SavedPlanError::Edited(name.into()));
        }
        let made = v
            .get("svcacct_version")
            .and_then(Value::as_str)
            .unwrap_or("?");
        if made != env!("CARGO_PKG_VERSION") {
            return Err(SavedPlanError::Version {
                made: made.into(),
                running: env!("CARGO_PKG_VERSION").into(),
            });
        }
        serde_json::from_value(v).map_err(|e| unreadable(e.to_string()))
    }

    /// Refuses the plan for another backend or organization, or another config.
    pub fn check_config(
        &self,
        backend: &str,
        organization: &str,
        config_digest: &str,
    ) -> Result<(), SavedPlanError> {
        let planned = format!("organization {} on {}", self.organization, self.backend);
        let configured = format!("organization {organization} on {backend}");
        if planned != configured {
            return Err(SavedPlanError::Elsewhere {
                planned,
                configured,
            });
        }
        if self.config_digest != config_digest {
            return Err(SavedPlanError::ConfigChanged);
        }
        Ok(())
    }

    /// Refuses the plan when the organization moved: past its revision, or, for a backend
    /// without one, when `fresh` (the plan made again now, under the lock) differs.
    pub fn check_live(&self, live_revision: u64, fresh: &Plan) -> Result<(), SavedPlanError> {
        if self.backend_has_revision {
            if live_revision != self.revision {
                return Err(SavedPlanError::Stale {
                    live: live_revision,
                    planned: self.revision,
                });
            }
            return Ok(());
        }
        let strip = |p: &Plan| {
            let mut v = serde_json::to_value(p).expect("a plan serializes");
            v["revision"] = Value::Null;
            v
        };
        if strip(fresh) != strip(&self.plan) {
            return Err(SavedPlanError::Differs);
        }
        Ok(())
    }
}

impl SavedPlan {
    /// Refuses the plan when an object it changes moved since it was made: `live` holds the
    /// objects the changes touch (read alone, [`crate::backend::Backend::snapshot_of`]). A
    /// create needs the object still absent; an update, the fields it changes still as the
    /// plan saw them; a delete, the object still there with the ownership and protection
    /// the plan saw. Other kinds of change are not checked this way.
    pub fn check_objects(&self, live: &LiveOrganization) -> Result<(), SavedPlanError> {
        for c in &self.plan.changes {
            let now = live_snapshot(live, &c.address);
            let moved = |what: String| SavedPlanError::Moved {
                address: c.address.to_string(),
                what,
            };
            match (&c.action, &now, &c.before) {
                // Delivery writes no backend object; what it sends is read at apply time.
                (Action::Deliver, _, _) => {}
                (Action::Create, None, _) => {}
                (Action::Create, Some(_), _) => return Err(moved("it exists now".into())),
                (_, None, _) => return Err(moved("it no longer exists".into())),
                (Action::Update, Some(now), Some(before)) => {
                    for field in c.changed_fields() {
                        if now.get(field) != before.get(field) {
                            return Err(moved(format!("its `{field}`")));
                        }
                    }
                }
                (Action::Delete, Some(now), Some(before)) => {
                    for field in [Field::Managed, Field::Protect] {
                        if now.get(field) != before.get(field) {
                            return Err(moved(format!("its `{field}`")));
                        }
                    }
                }
                _ => return Err(SavedPlanError::Differs),
            }
        }
        Ok(())
    }
}

/// An object of `live` as plans show it.
fn live_snapshot(live: &LiveOrganization, address: &Address) -> Option<Snapshot> {
    match address {
        Address::Role(n) => live.roles.get(n).cloned().map(Snapshot::Role),
        Address::Team(n) => live.teams.get(n).cloned().map(Snapshot::Team),
        Address::ServiceAccount(n) => live.service_accounts.get(n).map(Snapshot::account),
        Address::Key { account, key } => live
            .service_accounts
            .get(account)
            .and_then(|a| a.keys.get(key))
            .map(Snapshot::live_key),
        Address::Organization(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Change;

    fn plan(revision: u64, reason: &str) -> Plan {
        Plan {
            organization: "acme".into(),
            revision,
            changes: vec![Change {
                address: Address::team("platform"),
                action: Action::Create,
                reason: Some(reason.into()),
                before: None,
                after: Some(Snapshot::Team(crate::model::Team {
                    description: "x".into(),
                    ..Default::default()
                })),
                work: Vec::new(),
                revokes: Vec::new(),
                depends_on: Vec::new(),
            }],
            unmanaged: Vec::new(),
            secrets_not_held: Vec::new(),
            notes: Vec::new(),
            warnings: Vec::new(),
            effects: Default::default(),
            last_changed: Default::default(),
            key_uses: Default::default(),
            policy: Vec::new(),
        }
    }

    #[test]
    fn a_saved_plan_reads_back_and_an_edit_is_refused() {
        let saved = SavedPlan::new(plan(3, "r"), "local /x.db".into(), true, "d".into());
        let text = saved.to_text();
        let back = SavedPlan::parse(&text, "p.json").expect("reads back");
        assert_eq!(back.revision, 3);
        assert_eq!(back.plan.changes[0].action, Action::Create);
        let edited = text.replace("\"r\"", "\"s\"");
        assert!(matches!(
            SavedPlan::parse(&edited, "p.json"),
            Err(SavedPlanError::Edited(_))
        ));
    }

    #[test]
    fn without_a_revision_staleness_is_a_fresh_plan_that_differs() {
        let saved = SavedPlan::new(plan(0, "r"), "prefect x".into(), false, "d".into());
        // The revision means nothing here; the same plan made again is not stale.
        assert!(saved.check_live(9, &plan(9, "r")).is_ok());
        assert!(matches!(
            saved.check_live(0, &plan(0, "other")),
            Err(SavedPlanError::Differs)
        ));
        let with = SavedPlan::new(plan(4, "r"), "local /x.db".into(), true, "d".into());
        assert_eq!(
            with.check_live(5, &plan(5, "r")).unwrap_err().to_string(),
            "plan is stale: organization at revision 5, plan made at 4; run plan again"
        );
    }

    #[test]
    fn object_by_object_a_plan_holds_while_what_it_changes_is_as_it_saw_it() {
        use crate::model::{ServiceAccount, Team};
        let saved = |changes: Vec<Change>| {
            let mut p = plan(0, "r");
            p.changes = changes;
            SavedPlan::new(p, "prefect x".into(), false, "d".into())
        };
        let mut live = LiveOrganization::new("acme");
        // A create holds while the object is still absent.
        let create = saved(plan(0, "r").changes);
        assert!(create.check_objects(&live).is_ok());
        live.teams.insert("platform".into(), Team::default());
        assert!(matches!(
            create.check_objects(&live),
            Err(SavedPlanError::Moved { .. })
        ));
        // An update holds while the fields it changes are as before; others may move.
        let account = ServiceAccount {
            description: "old".into(),
            ..Default::default()
        };
        let update = saved(vec![Change {
            address: Address::account("ci"),
            action: Action::Update,
            reason: None,
            before: Some(Snapshot::account(&account)),
            after: Some(Snapshot::account(&ServiceAccount {
                admin: true,
                ..account.clone()
            })),
            work: Vec::new(),
            revokes: Vec::new(),
            depends_on: Vec::new(),
        }]);
        let mut live = LiveOrganization::new("acme");
        let err = update.check_objects(&live).unwrap_err().to_string();
        assert!(
            err.contains(
                "service_account.ci changed since the plan was made (it no longer exists)"
            ),
            "{err}"
        );
        live.service_accounts.insert(
            "ci".into(),
            ServiceAccount {
                description: "moved, but not changed by the plan".into(),
                ..account.clone()
            },
        );
        assert!(update.check_objects(&live).is_ok());
        live.service_accounts.get_mut("ci").unwrap().admin = true;
        let err = update.check_objects(&live).unwrap_err().to_string();
        assert!(err.contains("(its `admin`)"), "{err}");
    }
}
