//! svcacct: service accounts, teams, roles and API keys as code.
//!
//! The data flow: config → desired state; backend → live state; diff → plan; plan → apply →
//! backend + secret files. Each arrow is one module boundary.

pub mod actor;
pub mod address;
pub mod api;
pub mod apply;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod duration;
pub mod escape;
pub mod join;
pub mod model;
pub mod operation;
pub mod parallel;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod secrets;
pub mod server;
pub mod small_map;
pub mod store;
pub mod suggest;
