//! shomei's integration tests: one binary, real peers, one harness.

/// A browser test that runs twice: in a desktop window and on a phone held
/// upright (390 x 844 CSS pixels), where the same flow must work.
macro_rules! on_both_screens {
    ($desktop:ident, $phone:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $desktop() -> anyhow::Result<()> {
            $body(crate::harness::Screen::Desktop).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $phone() -> anyhow::Result<()> {
            $body(crate::harness::Screen::Phone).await
        }
    };
}

mod harness;

mod a11y;
mod account_changes;
mod accounts;
mod backends;
mod bad_paths;
mod card_links;
mod certificates;
mod crash;
mod dashboard;
mod digital;
mod edge;
mod faults;
mod firmware;
mod fleet;
mod kiosk;
mod language;
mod links;
mod network;
mod offline;
mod portal;
mod postgres;
mod print_flow;
mod refunds;
mod registration_path;
mod school_register;
mod staff;
mod store_print;
mod students;
mod terminal;
mod trust;
mod station_api;
mod tenants;
