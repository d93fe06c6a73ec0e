//! The app's original tests, unchanged, run twice: against the plain router with
//! `tower::ServiceExt::oneshot` under `#[tokio::test]` (as they ran before the migration), and
//! against the Berth group served over real HTTP by the host's listener (`berth::testing`).

mod common;

use common::{cases, RouterClient, ServerClient};

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        /// Before the migration: the router, in-process.
        mod router {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    cases::$case(&RouterClient(axum_app::app::router())).await;
                }
            )*
        }

        /// After: the same tests, over HTTP, against the group under `/axum-app`.
        mod group_over_http {
            use super::*;
            $(
                #[test]
                fn $case() {
                    let client = ServerClient::start();
                    berth::testing::block_on(cases::$case(&client));
                }
            )*
        }
    };
}

suite![
    health_answers_ok,
    create_answers_201_with_a_location_to_fetch_it,
    an_unknown_bookmark_is_404_in_the_apps_error_shape,
    an_id_that_is_not_a_number_is_refused_by_the_path_extractor,
    a_known_url_is_409_naming_the_bookmark_it_is,
    an_invalid_bookmark_is_422_naming_the_field,
    a_body_the_json_extractor_refuses_keeps_axums_status,
    the_list_filters_by_tag_and_limits,
    patch_changes_what_it_is_given,
    delete_answers_204_then_404,
    tags_counts_the_bookmarks_of_each_tag,
    an_unknown_route_is_404_and_a_wrong_method_405,
];

/// The one original test that cannot cross: `/export` paces itself with `tokio::time::sleep`.
/// Before the migration it passes; as a plugin the route answers the 500 of `tests/berth.rs`.
#[tokio::test]
async fn export_lists_every_bookmark_as_csv_on_the_plain_router() {
    cases::export_lists_every_bookmark_as_csv(&RouterClient(axum_app::app::router())).await;
}
