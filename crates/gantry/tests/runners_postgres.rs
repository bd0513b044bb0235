//! The runner suite's key cases on Postgres (each test on a fresh database of the test
//! binary's throwaway cluster; skipped, said on stderr, where Postgres is missing):
//! three runners drain 30 builds each exactly once, and a runner killed mid-step loses
//! its work to the next runner within the lease (its step's process killed when it
//! starts again). The cases are server_common::runners', which runners.rs runs on SQLite.

mod server_common;

use server_common::runners::{self as cases, Database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_runners_drain_thirty_builds_each_exactly_once_on_postgres() {
    let Some(db) = Database::postgres("runners_drain") else {
        return;
    };
    cases::three_runners_drain_thirty_builds(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_killed_mid_step_is_requeued_within_the_lease_on_postgres() {
    let Some(db) = Database::postgres("runners_kill") else {
        return;
    };
    cases::a_runner_killed_mid_step_is_requeued_within_the_lease(&db).await;
}
