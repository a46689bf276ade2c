//! Driver errors become port errors here, their text kept: a refused or
//! timed-out request is unavailability, a statement the server rejects is a
//! configuration error (schema out of date), an undecodable row is
//! corruption.

use scylla::errors::{
    DbError, ExecutionError, IntoRowsResultError, NewSessionError, NextRowError, PagerExecutionError, PrepareError,
    RequestAttemptError, RowsError, UseKeyspaceError,
};
use seqline_core::Error;

fn rejected(db: &DbError) -> bool {
    matches!(
        db,
        DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::Unauthorized
            | DbError::AuthenticationError
            | DbError::ConfigError
    )
}

pub(crate) fn execution(what: &str, e: ExecutionError) -> Error {
    let text = format!("scylla {what}: {e}");
    match &e {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) if rejected(db) => Error::Config(text),
        ExecutionError::BadQuery(_) => Error::Invalid(text),
        _ => Error::Unavailable(text),
    }
}

pub(crate) fn pager(what: &str, e: PagerExecutionError) -> Error {
    let text = format!("scylla {what}: {e}");
    match e {
        PagerExecutionError::SerializationError(_) => Error::Invalid(text),
        _ => Error::Unavailable(text),
    }
}

pub(crate) fn next_row(what: &str, e: NextRowError) -> Error {
    match e {
        NextRowError::RowDeserializationError(d) => Error::Corrupt(format!("scylla {what}: {d}")),
        other => Error::Unavailable(format!("scylla {what}: {other}")),
    }
}

pub(crate) fn rows(what: &str, e: impl Into<RowsProblem>) -> Error {
    Error::Corrupt(format!("scylla {what}: {}", e.into().0))
}

/// Any failure to read typed rows out of a result.
pub(crate) struct RowsProblem(String);

impl From<IntoRowsResultError> for RowsProblem {
    fn from(e: IntoRowsResultError) -> Self {
        Self(e.to_string())
    }
}
impl From<RowsError> for RowsProblem {
    fn from(e: RowsError) -> Self {
        Self(e.to_string())
    }
}
impl From<scylla::errors::DeserializationError> for RowsProblem {
    fn from(e: scylla::errors::DeserializationError) -> Self {
        Self(e.to_string())
    }
}
impl From<scylla::errors::TypeCheckError> for RowsProblem {
    fn from(e: scylla::errors::TypeCheckError) -> Self {
        Self(e.to_string())
    }
}
impl From<scylla::errors::MaybeFirstRowError> for RowsProblem {
    fn from(e: scylla::errors::MaybeFirstRowError) -> Self {
        Self(e.to_string())
    }
}

pub(crate) fn prepare(cql: &str, e: PrepareError) -> Error {
    let text = format!("scylla prepare {cql:?}: {e}");
    match &e {
        PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(db, _),
        } if rejected(db) => Error::Config(text),
        _ => Error::Unavailable(text),
    }
}

/// A refused login does not heal by retrying: it is a configuration error.
/// The driver nests the server's answer deep in pool errors, so its text is
/// what says so.
pub(crate) fn session(e: NewSessionError) -> Error {
    let text = format!("scylla connect: {e}");
    if [
        "Authentication failed",
        "Authentication is required",
        "AuthenticationError",
    ]
    .iter()
    .any(|t| text.contains(t))
    {
        return Error::Config(format!("{text} (check the store URI's user and password)"));
    }
    Error::Unavailable(text)
}

pub(crate) fn keyspace(e: UseKeyspaceError) -> Error {
    Error::Unavailable(format!("scylla use keyspace: {e}"))
}
