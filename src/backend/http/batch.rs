//! An apply's writes: one batch request per stage, split to stay under the server's body
//! limit, sent with an `Idempotency-Key` (a retried batch is answered from the server's record
//! instead of running twice), the lease, and the revision the plan read as `If-Match`.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::HttpBackend;
use super::request::{ErrorDetail, idempotency_key, protocol, to_error};
use crate::api::wire;
use crate::backend::{Applied, BackendError, Operation};

/// How many operations go in one batch request (the server takes bodies up to 1 MiB).
const BATCH_OPS: usize = 400;

#[derive(Deserialize)]
struct BatchResponse {
    revision: u64,
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    ok: bool,
    error: Option<ErrorDetail>,
}

impl HttpBackend {
    /// Applies the operations, a batch of at most [`BATCH_OPS`] at a time.
    pub(super) fn apply_batches(&mut self, ops: &[Operation]) -> Vec<Result<Applied, BackendError>> {
        let mut results = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(BATCH_OPS) {
            results.extend(self.apply_batch(chunk));
        }
        results
    }

    /// One batch request: a result per operation of `chunk`.
    fn apply_batch(&mut self, chunk: &[Operation]) -> Vec<Result<Applied, BackendError>> {
        let operations: Result<Vec<wire::BatchOperation>, Operation> =
            chunk.iter().cloned().map(TryInto::try_into).collect();
        let Ok(operations) = operations else {
            // The apply mints keys for this backend (its capabilities say so); a key
            // issue reaching it is a bug, refused before anything is sent.
            return chunk
                .iter()
                .map(|op| {
                    Err(BackendError::Conflict {
                        target: op.target().to_string(),
                        message: "the server registers keys by hash; the client mints them"
                            .into(),
                    })
                })
                .collect();
        };
        match self.post_batch(wire::Batch { operations }) {
            Ok(batch) if batch.results.len() == chunk.len() => {
                self.revision = Some(batch.revision);
                chunk
                    .iter()
                    .zip(batch.results)
                    .map(|(op, r)| match (r.ok, r.error) {
                        (true, _) => Ok(Applied::Done),
                        (false, Some(e)) => Err(to_error(&op.target().to_string(), e)),
                        (false, None) => Err(BackendError::Protocol {
                            what: format!("batch result for {}", op.target()),
                            source: None,
                        }),
                    })
                    .collect()
            }
            Ok(_) => chunk
                .iter()
                .map(|_| {
                    Err(BackendError::Protocol {
                        what: "batch (the wrong number of results)".into(),
                        source: None,
                    })
                })
                .collect(),
            Err(e) => chunk.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// Sends one batch with a fresh idempotency key, the lease if held, and the revision
    /// last seen.
    fn post_batch(&self, batch: wire::Batch) -> Result<BatchResponse, BackendError> {
        let body = json!(batch);
        let mut headers = vec![("Idempotency-Key", idempotency_key())];
        if let Some(lease) = &self.lease {
            headers.push(("Svcacct-Lease", lease.id.clone()));
        }
        if let Some(rev) = self.revision {
            headers.push(("If-Match", format!("\"{rev}\"")));
        }
        self.send(
            Method::POST,
            &self.org_path("/batch"),
            Some(&body),
            &headers,
        )
        .and_then(|resp| {
            if resp.status().is_success() {
                resp.json::<BatchResponse>()
                    .map_err(|e| protocol("batch", e))
            } else {
                Err(Self::error_of(resp, "batch"))
            }
        })
    }
}
