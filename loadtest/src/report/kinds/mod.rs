//! One file per kind: how its results are shown (tables, charts) and judged (the limits it
//! takes). [`super::columns::view`] maps a kind to its file's view.

pub mod api;
pub mod booking;
pub mod chat;
pub mod claim;
pub mod embed;
pub mod jobs;
pub mod notify;
