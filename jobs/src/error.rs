use sea_orm::DbErr;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("worker setup failed: {0}")]
    Setup(String),
    #[error("injected failure at {0}")]
    Injected(&'static str),
}

impl JobError {
    /// Deadlocks and serialization failures: the transaction can simply run again.
    pub(crate) fn is_transient_conflict(&self) -> bool {
        matches!(sqlstate(self).as_deref(), Some("40P01" | "40001"))
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
