//! Accounts: sign-up, login, logout; password hashing; sessions shared by every instance.

pub mod passwords;
pub mod sessions;
pub mod users;

pub use passwords::PasswordHasher;
pub use sessions::{SessionStore, Token};
pub use users::{Role, User};
