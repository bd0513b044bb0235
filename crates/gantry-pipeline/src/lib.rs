//! Gantry's pipeline compiler. Pure: no IO, no async.

pub mod plan;
mod yaml;

