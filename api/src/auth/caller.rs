//! The caller of a request: who its token names, and whether the account
//! has confirmed it yet.

use std::sync::OnceLock;

use entity::users::Role;

use super::Verified;

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: i64,
    pub role: Role,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The caller of a request: what its token says, and the viewer it stands
/// for once the account has confirmed it (`accounts::viewer_of`).
/// Requests confirm it before they run, except those that only place orders
/// or only read `me` (`graphql::checks_its_own_token`), whose one statement
/// checks the token itself: the placement, in the transaction that writes;
/// the profile, with the account it reads.
#[derive(Debug)]
pub struct Caller {
    token: Verified,
    viewer: OnceLock<Viewer>,
}

impl Caller {
    /// A caller whose account confirmed `token` as `viewer`.
    pub fn confirmed(token: Verified, viewer: Viewer) -> Self {
        Self {
            token,
            viewer: OnceLock::from(viewer),
        }
    }

    /// A caller whose token no account has confirmed yet.
    pub fn unconfirmed(token: Verified) -> Self {
        Self {
            token,
            viewer: OnceLock::new(),
        }
    }

    /// The caller, once confirmed.
    pub fn viewer(&self) -> Option<Viewer> {
        self.viewer.get().copied()
    }

    /// What the token says: who the caller is if the account still agrees.
    pub fn token(&self) -> Verified {
        self.token
    }

    /// A statement confirmed the token against the account: the account is
    /// still at the token's version, so its role is still the token's (a
    /// change of role moves the version on).
    pub fn confirm(&self) {
        let _ = self.viewer.set(self.token.viewer);
    }
}
