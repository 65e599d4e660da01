//! The statements behind the sign-in rates (`auth_throttle`): a login's
//! gate, what follows its password check, and a registration's gate. Each
//! is one statement (`sql/login_gate.sql` says how an attempt is counted).

use entity::users;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, QueryResult, Statement, Value};

use crate::auth::ClientAddr;
use crate::auth::throttle::keys;
use crate::config::{Rate, SignInRates};
use crate::error::{ApiError, ApiResult};

/// A rate's bucket for one key.
struct Bucket {
    key: String,
    rate: Rate,
}

/// What a login's gate let through: the account it names, and what the
/// attempt counts in.
pub struct LoginGate {
    pub account: Option<users::Model>,
    from: Option<ClientAddr>,
    /// Whether the account has signed in from `from` before.
    known: bool,
    /// The buckets that apply to this attempt.
    buckets: Vec<Bucket>,
    /// Those the gate counted the attempt in already.
    counted: Vec<String>,
}

/// Opens the gate for a login by `email` from `from`, or refuses it with
/// `TOO_MANY_REQUESTS` and the wait.
pub async fn open_login<C: ConnectionTrait>(
    db: &C,
    rates: &SignInRates,
    from: Option<ClientAddr>,
    email: &str,
) -> ApiResult<LoginGate> {
    let (address, account) = (
        rates.login_failures_per_address,
        rates.login_failures_per_account,
    );
    let address_key = from.map(keys::login_address);
    let account_key = keys::login_account(email);
    let row = one_row(
        db,
        include_str!("sql/login_gate.sql"),
        vec![
            email.trim().to_lowercase().into(),
            from.map(|c| c.to_string()).into(),
            address_key.clone().into(),
            account_key.clone().into(),
            seconds(address.step()),
            seconds(account.step()),
            seconds(address.tolerance()),
            seconds(account.tolerance()),
        ],
    )
    .await?;
    refuse_unless_allowed(&row)?;
    let known: bool = row.try_get("", "known")?;
    let buckets = address_key
        .map(|key| Bucket { key, rate: address })
        .into_iter()
        .chain((!known).then_some(Bucket {
            key: account_key,
            rate: account,
        }))
        .collect();
    Ok(LoginGate {
        account: users::Model::from_query_result_optional(&row, "")?,
        from,
        known,
        buckets,
        counted: row.try_get("", "counted")?,
    })
}

impl LoginGate {
    /// The password matched: what the gate counted is given back, and the
    /// client's address becomes one the account knows. Nothing to write
    /// (no statement) for a client with no recent failures at a known
    /// address.
    pub async fn succeeded<C: ConnectionTrait>(self, db: &C, user_id: i64) -> ApiResult<()> {
        let new_address = !self.known && self.from.is_some();
        if self.counted.is_empty() && !new_address {
            return Ok(());
        }
        signed_in(db, self.counted_steps(), user_id, self.from).await
    }

    /// The password did not match: the attempt counts in every bucket the
    /// gate let it through uncounted.
    pub async fn failed<C: ConnectionTrait>(self, db: &C) -> ApiResult<()> {
        let uncounted: Vec<&Bucket> = self
            .buckets
            .iter()
            .filter(|b| !self.counted.contains(&b.key))
            .collect();
        if uncounted.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = uncounted.iter().map(|b| b.key.clone()).collect();
        let steps: Vec<f64> = uncounted
            .iter()
            .map(|b| b.rate.step().as_secs_f64())
            .collect();
        let caps: Vec<f64> = uncounted
            .iter()
            .map(|b| b.rate.cap().as_secs_f64())
            .collect();
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/count_login_failure.sql"),
            [keys.into(), steps.into(), caps.into()],
        ))
        .await?;
        Ok(())
    }

    /// The password could not be checked (the hashing threads were busy,
    /// say): the attempt counts for nobody.
    pub async fn abandoned<C: ConnectionTrait>(self, db: &C) -> ApiResult<()> {
        if self.counted.is_empty() {
            return Ok(());
        }
        // no address: nothing to remember, only the attempt to give back
        signed_in(db, self.counted_steps(), 0, None).await
    }

    /// The keys and steps of the buckets the gate counted the attempt in.
    fn counted_steps(&self) -> (Vec<String>, Vec<f64>) {
        self.buckets
            .iter()
            .filter(|b| self.counted.contains(&b.key))
            .map(|b| (b.key.clone(), b.rate.step().as_secs_f64()))
            .unzip()
    }
}

/// Counts a registration from `from` against its address's rate, or
/// refuses it with `TOO_MANY_REQUESTS` and the wait.
pub async fn admit_registration<C: ConnectionTrait>(
    db: &C,
    rates: &SignInRates,
    from: ClientAddr,
) -> ApiResult<()> {
    let rate = rates.registrations_per_address;
    let row = one_row(
        db,
        include_str!("sql/registration_gate.sql"),
        vec![
            keys::registration_address(from).into(),
            seconds(rate.step()),
            seconds(rate.tolerance()),
        ],
    )
    .await?;
    refuse_unless_allowed(&row)
}

/// A new account's address becomes one it knows.
pub async fn remember_address<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    from: ClientAddr,
) -> ApiResult<()> {
    signed_in(db, (Vec::new(), Vec::new()), user_id, Some(from)).await
}

/// Gives back the attempts counted in `keys` (with their steps), and makes
/// `from`, when there is one, an address `user_id` knows.
async fn signed_in<C: ConnectionTrait>(
    db: &C,
    (keys, steps): (Vec<String>, Vec<f64>),
    user_id: i64,
    from: Option<ClientAddr>,
) -> ApiResult<()> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("sql/signed_in.sql"),
        [
            keys.into(),
            steps.into(),
            user_id.into(),
            from.map(|c| c.to_string()).into(),
        ],
    ))
    .await?;
    Ok(())
}

fn seconds(duration: std::time::Duration) -> Value {
    duration.as_secs_f64().into()
}

async fn one_row<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
) -> ApiResult<QueryResult> {
    db.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a sign-in gate answered no row")))
}

/// `TOO_MANY_REQUESTS` with the gate's wait, unless it let the attempt by.
fn refuse_unless_allowed(row: &QueryResult) -> ApiResult<()> {
    if row.try_get::<bool>("", "allowed")? {
        return Ok(());
    }
    let seconds: i64 = row.try_get("", "retry_after_s")?;
    Err(ApiError::TooManyRequests {
        retry_after: std::time::Duration::from_secs(seconds.max(1) as u64),
    })
}

/// Deletes the rows of keys back to their full burst (their time has
/// passed), which stand for the same as no row; returns how many.
pub async fn forget_spent<C: ConnectionTrait>(db: &C) -> ApiResult<u64> {
    let deleted = db
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "delete from sign_in_throttles where tat <= now()",
        ))
        .await?;
    Ok(deleted.rows_affected())
}
