//! API integration tests: the real server on 127.0.0.1:0 against real MariaDB and Redis.
//! One test binary, so the containers are shared; every test owns its database.

mod helpers;

mod access;
mod accounts;
mod ai_comments;
mod ai_provider;
mod bad_input;
mod batch;
mod batch_claims;
mod browser;
mod chat;
mod chromium;
mod diaries;
mod embed_provider;
mod interop;
mod notifications;
mod notify_faults;
mod openapi;
mod ops;
mod points;
mod rentals;
mod reservations;
mod search;
mod security;
mod social;
