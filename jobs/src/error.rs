use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("worker setup failed: {0}")]
    Setup(String),
    #[error("injected failure at {0}")]
    Injected(&'static str),
    #[error("a rebuild of the figures is already running; wait for it to finish")]
    RebuildRunning,
}

impl JobError {
    /// Deadlocks and serialization failures: the transaction can simply run again.
    pub(crate) fn is_transient_conflict(&self) -> bool {
        matches!(sqlstate(self).as_deref(), Some("40P01" | "40001"))
    }

    /// PostgreSQL ran the statement and rejected it for what it read or
    /// wrote: a value out of range, a constraint, a trigger that raised, a
    /// corrupt row. Running it again on the same orders fails the same way,
    /// so the orders that cause it are split off (see `analytics`). Failures
    /// of the database itself (connections, resources, timeouts, lock
    /// conflicts, shutdown) and errors outside it are not: the same run may
    /// pass later, and no order is to blame.
    pub(crate) fn is_data_failure(&self) -> bool {
        let Some(code) = sqlstate(self) else {
            return false;
        };
        // SQLSTATE classes: 08 connection, 25 transaction state, 40 rollback
        // (deadlock, serialization), 53 resources, 55 lock not available,
        // 57 operator intervention (statement timeout, shutdown), 58 system
        !matches!(
            code.get(..2),
            Some("08" | "25" | "40" | "53" | "55" | "57" | "58")
        )
    }
}

fn sqlstate(err: &JobError) -> Option<String> {
    use sea_orm::RuntimeErr;
    let JobError::Database(
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)),
    ) = err
    else {
        return None;
    };
    match e.as_ref() {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}
