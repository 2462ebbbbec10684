//! Accounts: sign-up, login, logout; password hashing; sessions shared by every instance.

pub mod email;
pub mod passwords;
pub mod roles;
pub mod sessions;
pub mod throttle;
pub mod tickets;
pub mod users;

pub use email::Email;
pub use passwords::PasswordHasher;
pub use sessions::{SessionId, SessionStore, Token};
pub use tickets::{Purpose, StreamTickets};
pub use users::{Role, User};
