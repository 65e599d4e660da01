use entity::users::{self, Role};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect,
};

use crate::auth::{self, Email, Password, Verified, Viewer};
use crate::auth_throttle::{AuthThrottle, ClientAddr};
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
    registration: Registration,
) -> ApiResult<users::Model> {
    let hash = auth::hash_password(registration.password).await?;
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

/// `register` for a client at `from`, unless it registered too often (or
/// the email was tried too often): then `TOO_MANY_REQUESTS`, and no hash.
pub async fn register_throttled<C: ConnectionTrait>(
    db: &C,
    throttle: &AuthThrottle,
    from: Option<ClientAddr>,
    registration: Registration,
) -> ApiResult<users::Model> {
    let email = registration.email.as_str().to_owned();
    throttle.begin_registration(from, &email)?;
    let registered = register(db, registration).await;
    if let Err(ApiError::Conflict(_)) = &registered {
        throttle.email_taken(&email);
    }
    registered
}

/// `login` for a client at `from`, unless it or the account failed too
/// often lately: then `TOO_MANY_REQUESTS`, without looking at the password.
pub async fn login_throttled<C: ConnectionTrait>(
    db: &C,
    throttle: &AuthThrottle,
    from: Option<ClientAddr>,
    email: &str,
    password: &str,
) -> ApiResult<users::Model> {
    throttle.begin_login(from, email)?;
    let user = login(db, email, password).await;
    match &user {
        Ok(_) => throttle.logged_in(from, email),
        Err(ApiError::InvalidCredentials) => {}
        Err(_) => throttle.login_abandoned(from, email),
    }
    user
}

/// Unknown email and wrong password give the same error, after the same work.
pub async fn login<C: ConnectionTrait>(
    db: &C,
    email: &str,
    password: &str,
) -> ApiResult<users::Model> {
    let user = match Email::parse(email) {
        Ok(email) => find_by_email(db, &email).await?,
        Err(_) => None,
    };
    let Some(user) = user else {
        // spend the time a real check takes, so timing tells nothing either
        let _ = auth::verify_password(password.to_owned(), dummy_hash().await?).await;
        return Err(ApiError::InvalidCredentials);
    };
    if auth::verify_password(password.to_owned(), user.password_hash.clone()).await? {
        Ok(user)
    } else {
        Err(ApiError::InvalidCredentials)
    }
}

/// A hash of a password nobody knows, checked against when the email is unknown.
async fn dummy_hash() -> ApiResult<String> {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_try_init(|| async {
        auth::hash_password(Password::parse(crate::config::Secret::random().expose())?).await
    })
    .await
    .cloned()
}

/// The caller a token names, as the account is now: with its current role;
/// `InvalidToken` when the account is gone, or the token predates a change
/// of its password or role. One primary-key read a request (HTTP requests
/// read theirs together: `crate::accounts`; one that only places orders has
/// its placement statement check the same): what lets a demoted admin lose
/// admin reads at once, and a changed password end every session.
pub async fn current_viewer<C: ConnectionTrait>(db: &C, token: &Verified) -> ApiResult<Viewer> {
    let accounts = find_accounts(db, &[token.viewer.user_id]).await?;
    viewer_of(accounts.first(), token)
}

/// What a token is checked against: an account's role and token version.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Account {
    pub id: i64,
    pub role: Role,
    pub token_version: i32,
}

/// The accounts of `ids` that exist, in one statement whatever their number.
pub async fn find_accounts<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<Vec<Account>, DbErr> {
    users::Entity::find()
        .select_only()
        .columns([
            users::Column::Id,
            users::Column::Role,
            users::Column::TokenVersion,
        ])
        .filter(users::Column::Id.is_in(ids.iter().copied()))
        .into_model::<Account>()
        .all(db)
        .await
}

/// The viewer `token` stands for, given its account as it is now (None:
/// gone).
pub fn viewer_of(account: Option<&Account>, token: &Verified) -> ApiResult<Viewer> {
    match account {
        Some(account)
            if account.id == token.viewer.user_id && account.token_version == token.version =>
        {
            Ok(Viewer {
                user_id: account.id,
                role: account.role,
            })
        }
        _ => Err(ApiError::InvalidToken),
    }
}

pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> ApiResult<Option<users::Model>> {
    Ok(users::Entity::find_by_id(id).one(db).await?)
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
    let hash = auth::hash_password(Password::parse(password)?).await?;
    let name = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("admin")
        .to_owned();
    if let Some(existing) = find_by_email(db, &email).await? {
        // unchanged: a restart must not end the admin's sessions
        if existing.role == Role::Admin
            && auth::verify_password(password.to_owned(), existing.password_hash.clone()).await?
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
