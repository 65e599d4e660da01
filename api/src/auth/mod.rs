//! Who is calling: bearer tokens (JWT, HS256) and the caller they name,
//! confirmed against the account (`accounts`, coalesced); passwords (argon2,
//! on threads of their own: `hashing`); the client's address and the
//! sign-in rates kept per address and account (`throttle`).

pub mod accounts;
mod caller;
mod client_addr;
pub mod hashing;
mod passwords;
pub mod throttle;
mod tokens;

pub use caller::{Caller, Viewer};
pub use client_addr::ClientAddr;
pub use passwords::{Email, Password, hash_password, verify_password};
pub use tokens::{Tokens, Verified};
