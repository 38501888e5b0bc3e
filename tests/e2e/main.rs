//! shomei's integration tests: one binary, real peers, one harness.

mod harness;

mod account_changes;
mod accounts;
mod bad_paths;
mod certificates;
mod crash;
mod dashboard;
mod edge;
mod faults;
mod firmware;
mod fleet;
mod kiosk;
mod links;
mod network;
mod offline;
mod portal;
mod print_flow;
mod school_register;
mod staff;
mod store_print;
mod students;
mod terminal;
mod trust;
mod station_api;
