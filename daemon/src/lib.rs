//! bmsd: the bms backup management daemon.

pub mod alerts;
pub mod catalog;
pub mod catalog_care;
pub mod cli;
pub mod config;
pub mod dbus;
pub mod events;
pub mod history;
pub mod immutability;
pub mod ipc;
pub mod listen_fds;
pub mod logging;
pub mod metrics;
pub mod metrics_text;
pub mod notify;
pub mod preflight;
pub mod retention;
pub mod runner;
pub mod runtime;
pub mod scheduler;
pub mod service;
pub mod state;
pub mod targets;
pub mod validate;
