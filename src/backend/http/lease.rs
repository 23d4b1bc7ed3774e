//! The organization's lock, as the server leases it: taken (polling while another apply holds
//! it), renewed by a thread at a third of its lifetime while the apply runs, and released
//! when the backend is dropped. The server leases locks only on organizations that exist, so
//! a new one is created first.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::HttpBackend;
use super::request::{ErrorBody, idempotency_key, protocol, send_with_retries};
use crate::backend::BackendError;

const LEASE_TTL_SECS: u64 = 30;

/// A lease the server granted, and the thread that renews it.
pub(super) struct Lease {
    pub(super) id: String,
    /// Dropping (or sending on) this stops the renewer at once.
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

#[derive(Deserialize)]
struct LeaseResponse {
    lease_id: String,
}

impl HttpBackend {
    /// Creates the organization unless it exists; one made meanwhile (409) is as good.
    pub(super) fn ensure_organization(&self) -> Result<(), BackendError> {
        let resp = self.send(Method::GET, &self.org_path(""), None, &[])?;
        if resp.status() != StatusCode::NOT_FOUND {
            return if resp.status().is_success() {
                Ok(())
            } else {
                Err(Self::error_of(resp, "organization"))
            };
        }
        let key = idempotency_key();
        let resp = self.send(
            Method::POST,
            "/v1/organizations",
            Some(&json!({ "name": self.organization })),
            &[("Idempotency-Key", key)],
        )?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            _ => Err(Self::error_of(
                resp,
                &format!("organization.{}", self.organization),
            )),
        }
    }

    /// Takes the lease, polling while another holder has it, for up to `wait`; returns its id.
    pub(super) fn acquire_lease(&self, owner: &str, wait: Duration) -> Result<String, BackendError> {
        let start = Instant::now();
        let body = json!({ "owner": owner, "ttl_seconds": LEASE_TTL_SECS });
        loop {
            let resp = self.send(
                Method::POST,
                &self.org_path("/lock"),
                Some(&body),
                &[("Idempotency-Key", idempotency_key())],
            )?;
            if resp.status().is_success() {
                let lease: LeaseResponse = resp.json().map_err(|e| protocol("lease", e))?;
                return Ok(lease.lease_id);
            }
            if resp.status() != StatusCode::CONFLICT {
                return Err(Self::error_of(resp, "lock"));
            }
            let holder = resp
                .json::<ErrorBody>()
                .map(|b| b.error.message)
                .unwrap_or_default();
            if start.elapsed() >= wait {
                return Err(BackendError::Locked {
                    holder,
                    waited_secs: start.elapsed().as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The lease `lease_id`, renewed while the apply runs, at a third of its lifetime.
    pub(super) fn renewed(&self, lease_id: String) -> Lease {
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let (client, counter, token, base) = (
                self.client.clone(),
                self.requests.clone(),
                self.token.clone(),
                self.base.clone(),
            );
            let path = self.org_path(&format!("/lock/{lease_id}"));
            std::thread::spawn(move || {
                // Wakes every third of the lease's lifetime, or at once when told to stop.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(Duration::from_secs(LEASE_TTL_SECS / 3))
                {
                    let _ = send_with_retries(
                        &client,
                        &counter,
                        &token,
                        &base,
                        Method::PUT,
                        &path,
                        Some(&json!({ "ttl_seconds": LEASE_TTL_SECS })),
                        &[],
                    );
                }
            })
        };
        Lease {
            id: lease_id,
            stop: Some(stop),
            renewer: Some(renewer),
        }
    }

    /// Stops the renewer and gives the lease back; a failed release expires on its own.
    pub(super) fn release(&mut self) {
        if let Some(mut lease) = self.lease.take() {
            drop(lease.stop.take());
            if let Some(t) = lease.renewer.take() {
                let _ = t.join();
            }
            let _ = self.send(
                Method::DELETE,
                &self.org_path(&format!("/lock/{}", lease.id)),
                None,
                &[],
            );
        }
    }
}
