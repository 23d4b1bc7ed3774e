//! News of other replicas' writes on PostgreSQL. Every committed change to an organization is
//! announced with `NOTIFY` (see [`crate::store::postgres::CHANGES_CHANNEL`]); one connection
//! per server `LISTEN`s on a thread of its own and tells the verify index at once, so a
//! revocation through one replica is usually refused by the others as soon as the revoking
//! request is answered (on loopback the notification mostly arrives before the writer's
//! response reaches its client: see the replicas tests), instead of up to
//! [`super::verify_index::CONFIRM_EVERY`] later.
//!
//! Delivery is a hint, never the guarantee: it races the revoking replica's response, and a
//! listener that lost its connection hears nothing until it reconnects. The index's periodic
//! stamp check stays the bound either way, and a reconnected listener marks the index stale,
//! since it may have missed news while away.

use std::sync::Weak;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

use super::verify_index::VerifyIndex;
use crate::store::postgres::CHANGES_CHANNEL;

/// How long the listener waits for news before checking its connection is still alive (a
/// peer that vanished without closing the socket is otherwise never noticed).
const PING_EVERY: Duration = Duration::from_secs(2);
/// How long a liveness check may take before the connection is given up.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The listening connection's `application_name`.
const LISTENER_NAME: &str = "svcacct listener";
/// Pause between reconnection attempts.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Listens at `url` for as long as `index` lives, on a thread of its own (the synchronous
/// client blocks, and must not run on the server's async runtime).
pub fn spawn(url: String, index: Weak<VerifyIndex>) {
    let started = std::thread::Builder::new()
        .name("svcacct-pg-listen".into())
        .spawn(move || {
            while index.strong_count() > 0 {
                match listen(&url, &index) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection that hears other replicas' writes; reconnecting");
                        std::thread::sleep(RETRY_EVERY);
                    }
                }
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start listening for other replicas' writes; they are seen within the verify index's bound");
    }
}

/// Listens until the index is gone (`Ok`) or the connection fails.
fn listen(url: &str, index: &Weak<VerifyIndex>) -> Result<(), postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    // Named, so an operator (or a test) can tell it from the pool's connections.
    client.batch_execute(&format!(
        "SET application_name = '{LISTENER_NAME}'; LISTEN {CHANGES_CHANNEL}"
    ))?;
    // Whatever was committed before the `LISTEN` took effect went unheard.
    let Some(i) = index.upgrade() else {
        return Ok(());
    };
    i.store_changed();
    drop(i);
    loop {
        {
            let mut news = client.notifications();
            let mut news = news.timeout_iter(PING_EVERY);
            while news.next()?.is_some() {
                let Some(i) = index.upgrade() else {
                    return Ok(());
                };
                i.store_changed();
            }
        }
        if index.strong_count() == 0 {
            return Ok(());
        }
        client.is_valid(PING_TIMEOUT)?;
    }
}
