//! The browser tests' harness: chromedriver and Chromium, page helpers, the server.
#![allow(dead_code)] // the tests and the benchmark each use a different part

pub mod chrome;
pub mod page;
pub mod site;
