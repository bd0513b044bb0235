//! The conformance suite: every behaviour of the store, written once as a case taking the
//! store under test, run on SQLite and on Postgres.

mod fixtures;
mod support;

mod builds;
mod logs;
mod notify;
mod preparing;
mod queue;
mod recovery;
mod repos;
mod runners;
mod secrets;

/// Expands every case into `sqlite::<case>` and `postgres::<case>` tests.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run_sqlite(|h| Box::pin(crate::$module::$case(h))).await;
                }
            )*
        }
        mod postgres_db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run_postgres(|h| Box::pin(crate::$module::$case(h))).await;
                }
            )*
        }
    };
}

conformance! {
    repos::repo_create_get_list_update_delete,
    repos::repo_duplicate_is_a_conflict,
    repos::repo_bad_input_is_a_clear_error,
    repos::repo_delete_cascades,
    repos::repo_clone_url_and_webhook_secret_are_replaced,
    repos::delivery_replay_is_detected,
    builds::build_numbers_are_distinct_under_concurrent_creates,
    builds::build_detail_holds_workflows_and_steps,
    builds::build_list_is_newest_first_and_paged,
    builds::build_that_did_not_compile_keeps_its_diagnostics,
    builds::status_moves_forward_only,
    builds::approval_is_recorded_once,
    logs::log_appends_are_idempotent_and_ordered,
    logs::log_cap_drops_lines_and_stores_one_notice,
    logs::log_byte_cap_counts_bytes,
    logs::log_appends_leave_small_pools_usable,
    logs::close_completes_while_log_appends_run,
    queue::pending_build_enqueues_each_workflow,
    queue::concurrent_claimers_get_each_item_exactly_once,
    queue::claims_respect_runner_labels,
    queue::only_the_holder_extends_or_completes,
    queue::completion_is_idempotent_for_its_runner_only,
    queue::expired_leases_are_requeued_then_failed,
    queue::cancel_drops_a_builds_items,
    secrets::secret_round_trip_and_ciphertext_differs,
    secrets::secret_under_another_key_is_a_clear_error,
    secrets::token_only_hash_is_stored,
    recovery::recovery_errors_started_builds_and_requeues_unstarted_work,
    recovery::recovery_ends_orphaned_builds,
    recovery::recovery_leaves_a_build_another_replica_is_finishing,
    notify::notifications_reach_every_listener_in_order,
    preparing::hook_build_is_recorded_once_then_prepared_once,
    preparing::failed_preparation_ends_the_build_with_its_diagnostics,
    preparing::a_build_cancelled_while_preparing_gets_nothing_attached,
    preparing::hook_build_bad_input_is_a_clear_error_and_records_nothing,
    preparing::a_preparation_is_claimed_once_and_taken_again_when_its_lease_ends,
    runners::runner_token_scope_is_stored_and_checked,
    runners::a_repo_scoped_claim_passes_over_other_repositories,
    runners::runner_presence_is_shared_and_stale_rows_go,
}
