//! The C ABI: entry points, function lists and pointer handling. The only place with `unsafe`.
#![allow(unsafe_code)]

pub mod entry;
pub mod lists;
pub mod pointers;
