//! Friends and guestbooks.

pub mod friends;
pub mod guestbook;
