//! Test support shared by Gantry's crates, used only as a dev-dependency.
//!
//! [`postgres::admin_url`] gives a test binary a throwaway Postgres cluster (or the one
//! `GANTRY_TEST_POSTGRES_URL` names), started once and removed when the binary exits.

pub mod postgres;
