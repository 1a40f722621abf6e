//! # coffer-cli
//!
//! `coffer`, the command line of a Coffer cluster, after cloudhsm-cli: the same commands
//! (`cluster`, `login`, `user`, `key`, `crypto`), the same JSON output
//! (`{"error_code": 0, "data": …}`, non-zero `error_code` and exit status on error), single-
//! command mode with `COFFER_ROLE` and `COFFER_PIN=username:password`, and an interactive shell
//! (`coffer interactive`, or `coffer` alone) that keeps its session and login. Beyond
//! cloudhsm-cli it verifies and reads audit logs (`coffer audit`) and starts a local
//! development cluster (`coffer up`).
//!
//! Passwords are never taken from the command line: a prompt without echo, `--password-file`
//! or `--password-env` ([`password`]).
#![forbid(unsafe_code)]

pub mod args;
pub mod attributes;
pub mod commands;
pub mod error;
pub mod filter;
pub mod mechanism;
pub mod password;
pub mod shell;
pub mod up;
