//! Accounts: registration, login (behind the sign-in rates), the admin an
//! operator creates.

use entity::users::{self, Role};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QueryFilter};

use crate::auth::{self, ClientAddr, Email, Password};
use crate::config::SignInRates;
use crate::domain::sign_in;
use crate::error::{ApiError, ApiResult, OnConstraint};

pub struct Registration {
    pub name: String,
    pub email: Email,
    pub password: Password,
}

impl Registration {
    pub fn parse(name: &str, email: &str, password: &str) -> ApiResult<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_input("name must have 1 to 100 characters"));
        }
        Ok(Self {
            name: name.to_owned(),
            email: Email::parse(email)?,
            password: Password::parse(password)?,
        })
    }
}

// no email in the span: logs are no place for personal data; the user id
// logged once the account exists is what an operator needs
#[tracing::instrument(skip_all)]
pub async fn register<C: ConnectionTrait>(
    db: &C,
    from: Option<ClientAddr>,
    registration: Registration,
) -> ApiResult<users::Model> {
    let hash = auth::hash_password(from, registration.password).await?;
    let user = users::ActiveModel {
        name: Set(registration.name),
        email: Set(registration.email.as_str().to_owned()),
        password_hash: Set(hash),
        role: Set(Role::Customer),
        ..Default::default()
    };
    let user = users::Entity::insert(user)
        .exec_with_returning(db)
        .await
        .on_constraint("users_email_key", || {
            ApiError::Conflict("an account with this email already exists".into())
        })?;
    tracing::info!(user_id = user.id, "registered a customer");
    Ok(user)
}

/// `register` for a client at `from`, unless its address registered too
/// often lately: then `TOO_MANY_REQUESTS`, and no hash. The address becomes
/// one the new account knows, so its owner signs in from it whatever
/// guesses others make at the account.
pub async fn register_throttled<C: ConnectionTrait>(
    db: &C,
    rates: &SignInRates,
    from: Option<ClientAddr>,
    registration: Registration,
) -> ApiResult<users::Model> {
    if let Some(from) = from {
        sign_in::admit_registration(db, rates, from).await?;
    }
    let user = register(db, from, registration).await?;
    if let Some(from) = from {
        sign_in::remember_address(db, user.id, from).await?;
    }
    Ok(user)
}

/// Signs in `email` for a client at `from`, unless the rates of failed
/// logins from its address, or at the account from addresses it never
/// signed in from, are spent: then `TOO_MANY_REQUESTS`, without looking at
/// the password. A client with no recent failures, at an address its
/// account knows, makes one statement (`sql/login_gate.sql`).
pub async fn login_throttled<C: ConnectionTrait>(
    db: &C,
    rates: &SignInRates,
    from: Option<ClientAddr>,
    email: &str,
    password: &str,
) -> ApiResult<users::Model> {
    let mut gate = sign_in::open_login(db, rates, from, email).await?;
    match check_password(from, gate.account.take(), password).await {
        Ok(Some(user)) => {
            gate.succeeded(db, user.id).await?;
            Ok(user)
        }
        Ok(None) => {
            gate.failed(db).await?;
            Err(ApiError::InvalidCredentials)
        }
        Err(e) => {
            // nothing was learnt about the password: the attempt counts for
            // nobody (and the answer is the check's error, whatever this is)
            let _ = gate.abandoned(db).await;
            Err(e)
        }
    }
}

/// The account, if `password` is its password. An unknown email and a
/// wrong password cost the same work, so timing tells them apart no more
/// than the answer does.
async fn check_password(
    from: Option<ClientAddr>,
    user: Option<users::Model>,
    password: &str,
) -> ApiResult<Option<users::Model>> {
    let Some(user) = user else {
        let _ = auth::verify_password(from, password.to_owned(), dummy_hash().await?).await;
        return Ok(None);
    };
    let matches =
        auth::verify_password(from, password.to_owned(), user.password_hash.clone()).await?;
    Ok(matches.then_some(user))
}

/// A hash of a password nobody knows, checked against when the email is unknown.
async fn dummy_hash() -> ApiResult<String> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| async {
        // made once, by whichever sign-in comes first: no one's share
        auth::hash_password(
            None,
            Password::parse(crate::config::Secret::random().expose())?,
        )
        .await
    })
    .await
    .cloned()
}

pub async fn find_by_email<C: ConnectionTrait>(
    db: &C,
    email: &Email,
) -> ApiResult<Option<users::Model>> {
    Ok(users::Entity::find()
        // matches the unique index on lower(email)
        .filter(Expr::cust_with_values(
            "lower(email) = $1",
            [email.as_str()],
        ))
        .one(db)
        .await?)
}

/// Creates the admin, or makes an existing account admin with this password.
/// Used by `ADMIN_EMAIL`/`ADMIN_PASSWORD` at start-up and by `tally create-admin`.
pub async fn ensure_admin<C: ConnectionTrait>(
    db: &C,
    email: &str,
    password: &str,
) -> ApiResult<users::Model> {
    let email = Email::parse(email)?;
    // an operator's command or start-up: no client's share
    let hash = auth::hash_password(None, Password::parse(password)?).await?;
    let name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("admin")
        .to_owned();
    if let Some(existing) = find_by_email(db, &email).await? {
        // unchanged: a restart must not end the admin's sessions
        if existing.role == Role::Admin
            && auth::verify_password(None, password.to_owned(), existing.password_hash.clone())
                .await?
        {
            return Ok(existing);
        }
        let admin = users::ActiveModel {
            id: Set(existing.id),
            role: Set(Role::Admin),
            password_hash: Set(hash),
            ..Default::default()
        };
        return Ok(users::Entity::update(admin).exec(db).await?);
    }
    let admin = users::ActiveModel {
        name: Set(name),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(hash),
        role: Set(Role::Admin),
        ..Default::default()
    };
    Ok(users::Entity::insert(admin).exec_with_returning(db).await?)
}
