//! The C ABI: entry points, function lists and pointer handling. The only place with `unsafe`.
//!
//! Its pointer handling is tested with NULL pointers, short buffers and length queries in
//! `tests/cryptoki.rs`, and that test is run again under Valgrind's memcheck there.
#![allow(unsafe_code)]

pub mod entry;
pub mod lists;
pub mod pointers;
