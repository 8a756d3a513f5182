//! Shared helpers for Tollgate's integration tests.

pub mod conformance;
pub mod deliver;
pub mod faults;
pub mod lambda;
pub mod logs;
pub mod moto;
pub mod runtime_api;
pub mod serve;
pub mod silent;
pub mod webdriver;

/// Makes the child `command` starts receive `signal` when the thread that
/// spawned it exits (`PR_SET_PDEATHSIG`), and exit at once if that parent
/// is already gone, so no server or function outlives a test binary that
/// crashed or was killed. The hook runs between fork and exec, so std forks
/// instead of using `posix_spawn`.
pub fn die_with_parent(command: &mut std::process::Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (prctl, getppid, _exit).
    unsafe {
        let parent = libc::getpid();
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: don't outlive it.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Instantiates the store conformance suite ([`conformance`]) for one
/// `Store` implementation: one `#[tokio::test]` per case, inside a module
/// named `conformance`, each on a multi-thread runtime with a fresh store.
///
/// `$fresh` is an async fn (or a closure returning a future) that makes a
/// new, empty store. It returns the store itself, or a
/// [`conformance::Fixture`] when something (a temp dir, a server) must live
/// as long as the store:
///
/// ```ignore
/// async fn fresh() -> tollgate_tests::conformance::Fixture { ... }
/// tollgate_tests::conformance_suite!(fresh);
/// // or: tollgate_tests::conformance_suite!(tollgate_tests::moto::fresh_store);
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($fresh:expr) => {
        $crate::conformance_suite!(@cases $fresh;
            get_of_a_missing_subscription_is_none,
            commit_then_get_round_trips_every_field,
            a_stale_version_conflicts_and_writes_nothing,
            creating_a_subscription_that_exists_conflicts,
            a_version_for_a_missing_subscription_conflicts,
            a_failed_condition_applies_nothing,
            a_duplicate_delivery_is_refused_and_writes_nothing,
            an_expired_dedupe_mark_does_not_refuse_a_commit,
            a_log_only_commit_writes_log_and_mark_but_not_state,
            the_log_is_oldest_first,
            a_commit_that_would_break_the_version_sequence_is_refused,
            a_commit_past_the_last_version_is_refused_without_a_panic,
            commit_errors_name_the_subscription_or_the_delivery,
            customer_subscriptions_returns_all_of_a_customers_and_none_of_anothers,
            record_delivery_goes_new_then_pending_then_done,
            concurrent_records_of_one_delivery_report_new_once,
            an_expired_delivery_counts_as_absent,
            pending_deliveries_lists_only_live_pending_ones_oldest_first,
            record_delivery_records_pending_whatever_status_it_carries,
            a_dedupe_mark_keeps_the_receipt_details_of_the_record,
            out_of_range_times_are_refused_and_write_nothing,
            concurrent_ingests_lose_no_update,
            concurrent_redeliveries_apply_once,
            racing_commits_at_one_version_have_one_winner,
            seat_limit_holds_under_50_concurrent_claims,
            seat_claims_are_idempotent_per_user,
            a_released_seat_can_be_claimed_by_another_user,
            claiming_a_seat_of_a_missing_subscription_is_not_found,
            commits_keep_seat_holders,
            claims_are_granted_up_to_the_purchased_limit_and_refused_at_it,
            a_claim_honours_a_limit_lowered_by_a_commit_a_moment_before,
            racing_claims_for_the_last_seats_never_exceed_the_limit,
            claims_racing_commits_keep_the_count,
            more_holders_than_one_item_could_list_do_not_stop_commits,
            a_token_is_single_use,
            an_expired_token_is_not_taken,
            a_peeked_token_stays_until_taken,
            concurrent_takes_of_a_token_have_one_winner,
            putting_a_live_token_twice_is_duplicate,
            token_liveness_is_judged_by_the_now_passed,
            a_duplicate_token_error_never_contains_the_token_id,
            a_token_kind_containing_a_hash_is_refused,
            link_user_is_idempotent_and_lists_linked_customers,
            an_expired_link_grants_nothing_and_linking_again_renews_it,
            replace_links_makes_a_marketplaces_links_exactly_the_new_set,
            replace_links_refuses_a_link_to_another_marketplace_and_writes_nothing,
            readers_racing_a_replace_never_see_more_than_the_old_or_the_new_set,
            unlink_user_removes_a_live_link_once_and_nothing_else,
            enrollment_is_idempotent_per_member_and_subscription,
            a_member_held_for_another_subscription_is_reported_with_its_holder,
            a_full_group_refuses_new_members_but_not_its_own,
            a_cap_of_zero_admits_nobody_and_no_cap_admits_everybody,
            the_cap_holds_under_30_concurrent_enrollments,
            concurrent_enrollments_of_one_member_for_different_subscriptions_have_one_winner,
            unenroll_frees_a_place_only_for_its_holding_subscription,
            a_transfer_moves_a_place_only_from_its_holder_and_keeps_the_count,
            groups_are_counted_apart_by_institution_product_and_marketplace,
            a_group_product_containing_a_hash_is_refused,
        );
    };
    (@cases $fresh:expr; $($case:ident),+ $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let fresh = ($fresh)().await;
                    let store = $crate::conformance::UnderTest::store(&fresh);
                    $crate::conformance::$case(store).await;
                }
            )+
        }
    };
}

/// The suite on the in-memory SQLite store; also proves a factory may
/// return a plain store rather than a [`conformance::Fixture`].
#[cfg(test)]
mod in_memory_sqlite {
    async fn fresh() -> tollgate::store::sqlite::SqliteStore {
        tollgate::store::sqlite::SqliteStore::open_in_memory().expect("in-memory store")
    }

    crate::conformance_suite!(fresh);
}

#[cfg(test)]
mod tests {
    /// Every case in `conformance.rs` is listed in `conformance_suite!`, so
    /// none silently stops running.
    #[test]
    fn the_macro_lists_every_conformance_case() {
        let cases: Vec<&str> = include_str!("conformance.rs")
            .split("\npub async fn ")
            .skip(1)
            .filter_map(|rest| rest.split_once("(store: &dyn Store)"))
            .map(|(name, _)| name)
            .filter(|name| {
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .collect();
        assert!(cases.len() > 20, "found {cases:?}");
        let lib = include_str!("lib.rs");
        let (_, listed) = lib.split_once("@cases $fresh;").expect("the case list");
        for case in cases {
            assert!(
                listed.contains(&format!("{case},")),
                "conformance case `{case}` is missing from conformance_suite!"
            );
        }
    }
}

/// Runs each case once per store, as `sqlite::<case>` and
/// `dynamodb::<case>`: `$harness::sqlite()` and `$harness::dynamodb()` build
/// the test's world on a fresh embedded store and a fresh table on moto.
#[macro_export]
macro_rules! on_both_stores {
    ($harness:ident; $($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::$harness::sqlite().await).await;
                }
            )+
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::$harness::dynamodb().await).await;
                }
            )+
        }
    };
}
