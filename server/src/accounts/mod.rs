//! Accounts: sign-up, login, logout; password hashing; sessions shared by every instance.

pub mod email;
pub mod passwords;
pub mod roles;
pub mod sessions;
pub mod throttle;
pub mod users;

pub use email::Email;
pub use passwords::PasswordHasher;
pub use sessions::{SessionStore, Token};
pub use users::{Role, User};
