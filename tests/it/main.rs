//! The integration tests: the real `svcacct` binary on real SQLite organization files in
//! temporary directories, one module per area.

mod common;

mod adoption;
mod ci_scripts;
mod concurrency;
mod config_errors;
mod conformance;
mod crash;
mod deliver;
mod escaping;
mod export;
mod github_sim;
mod hardening_client;
mod hardening_server;
mod http;
mod init;
mod key_files;
mod key_last_use;
mod lifecycle;
mod lock_model;
mod migrations;
mod operations;
mod packaging;
mod policy;
mod postgres;
mod prefect;
mod prefect_sim;
mod prune;
mod replicas;
mod review;
mod revocation;
mod rotation;
mod saved_plans;
mod schema;
mod secrets;
mod server;
mod store;
mod verify_index;
