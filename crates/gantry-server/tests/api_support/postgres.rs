//! The throwaway Postgres cluster of this test binary (or `GANTRY_TEST_POSTGRES_URL`),
//! shared with the store's conformance suite through `gantry-testsupport`.

#[allow(unused_imports)] // only the Postgres test binaries call it
pub use gantry_testsupport::postgres::admin_url;
