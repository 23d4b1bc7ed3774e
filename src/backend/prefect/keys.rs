//! The key protocol: Prefect mints a bot's one key, so issuing is either collecting the
//! secret of the create that made the bot or rotating it, revoking the active key is a
//! rotation whose secret is thrown away, and what Prefect has no field for (the key's name,
//! description, rotation settings and the keys still retiring) goes into the record.

use reqwest::Method;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::client::{BotRotate, BotWire, Retry};
use super::ledger::{BotRecord, KeyRecord, RetiringRecord};
use super::{PrefectBackend, failed};
use crate::backend::{BackendError, IssuedSecret};
use crate::clock;
use crate::duration::Duration;
use crate::model::ApiKey;
use crate::operation::KeyIssue;

/// The key record of declared settings.
pub(super) fn key_record(name: &str, k: &ApiKey) -> KeyRecord {
    KeyRecord {
        name: name.to_string(),
        description: k.description.clone(),
        expires_in: k.expires_in,
        rotate_every: k.rotate_every,
        overlap: k.overlap,
    }
}

pub(super) fn expiration(now: OffsetDateTime, k: &ApiKey) -> Option<OffsetDateTime> {
    k.expires_in.map(|d| now + d.to_time())
}

impl PrefectBackend {
    /// Issues an account's key: the secret of the create that made the bot, or a rotation.
    pub(super) fn issue_key(
        &mut self,
        account: &str,
        name: &str,
        issue: &KeyIssue,
    ) -> Result<IssuedSecret, BackendError> {
        let now = clock::now();
        let live = self.live()?;
        let bot_id = live.bot(account)?.id.clone();
        let mut record = live.bot_record(&bot_id);
        let fresh = live.fresh.remove(account);
        let issued = match fresh {
            Some(secret) if issue.replaces.is_none() => secret,
            _ => {
                let target = format!("key.{account}.{name}");
                self.rotate(&bot_id, &target, issue, now, &mut record)?
            }
        };
        let live = self.live()?;
        record.retiring.retain(|r| r.retires_at > now);
        record.key = Some(key_record(name, &issue.settings));
        live.ledger.set_bot(&bot_id, Some(record));
        if let Some(b) = live.bots.get_mut(account) {
            b.key_id = issued.id.clone();
        }
        Ok(issued)
    }

    /// Rotates a bot's key for an issue; the key it replaces goes into the record as retiring
    /// when it keeps working for an overlap.
    fn rotate(
        &mut self,
        bot_id: &str,
        target: &str,
        issue: &KeyIssue,
        now: OffsetDateTime,
        record: &mut BotRecord,
    ) -> Result<IssuedSecret, BackendError> {
        // The old key keeps working for the overlap; a key nobody was given (of a bot
        // svcacct made) goes at once. Prefect reads null as "delete the old key".
        let overlap = match &issue.replaces {
            Some(r) => r.overlap,
            None if record.created.is_some() => Duration(0),
            None => issue.settings.overlap.unwrap_or(Duration(0)),
        };
        let rotation = BotRotate {
            api_key_expiration: expiration(now, &issue.settings),
            old_key_expires_in_seconds: (overlap.seconds() > 0).then(|| overlap.seconds()),
        };
        let bot = self.rotate_api_key(bot_id, rotation, target)?;
        let secret = bot.api_key.key.ok_or_else(|| BackendError::Protocol {
            what: "rotate_api_key (no key in the answer)".into(),
            source: None,
        })?;
        if let Some(r) = &issue.replaces
            && overlap.seconds() > 0
        {
            record.retiring.push(RetiringRecord {
                id: r.id.clone(),
                retires_at: now + overlap.to_time(),
            });
        }
        Ok(IssuedSecret {
            id: bot.api_key.id,
            secret: Zeroizing::new(secret),
            created_at: bot.api_key.created,
            expires_at: bot.api_key.expiration,
        })
    }

    /// Sends Prefect's rotation of a bot's key; its answer carries the new secret, once.
    fn rotate_api_key(
        &mut self,
        bot_id: &str,
        rotation: BotRotate,
        target: &str,
    ) -> Result<BotWire, BackendError> {
        let body = serde_json::to_value(rotation).expect("serializable");
        let c = &mut self.client;
        c.call(
            Method::POST,
            &c.a(&format!("bots/{bot_id}/rotate_api_key")),
            Some(&body),
            &[200, 201],
            Retry::Idempotent,
            target,
        )
        .map_err(failed)?
        .json("rotated bot")
    }

    pub(super) fn update_key(&mut self, account: &str, name: &str, key: &ApiKey) -> Result<(), BackendError> {
        let live = self.live()?;
        let id = live.bot(account)?.id.clone();
        let mut record = live.bot_record(&id);
        record.key = Some(key_record(name, key));
        live.ledger.set_bot(&id, Some(record));
        Ok(())
    }

    /// Revokes a key: a rotated-out one is deleted; the active one is rotated away with its
    /// successor's secret thrown away, since Prefect keeps every bot with a key.
    pub(super) fn revoke_key(&mut self, account: &str, key_id: &str) -> Result<(), BackendError> {
        let target = format!("key.{account}");
        let live = self.live()?;
        let bot = live.bot(account)?;
        let (bot_id, active) = (bot.id.clone(), bot.key_id == key_id);
        let mut record = live.bot_record(&bot_id);
        if active {
            let rotation = BotRotate {
                api_key_expiration: None,
                old_key_expires_in_seconds: None,
            };
            let bot = self.rotate_api_key(&bot_id, rotation, &target)?;
            drop(bot.api_key.key.map(Zeroizing::new));
            record.key = None;
            if let Some(b) = self.live()?.bots.get_mut(account) {
                b.key_id = bot.api_key.id;
            }
        } else {
            let c = &mut self.client;
            c.delete(&c.a(&format!("bots/{bot_id}/delete_bot_api_key/{key_id}")), &target)
            .map_err(failed)?;
            record.retiring.retain(|r| r.id != key_id);
        }
        let live = self.live()?;
        if live.ledger.bots.contains_key(&bot_id) {
            live.ledger.set_bot(&bot_id, Some(record));
        }
        Ok(())
    }
}
