//! SQLite's statements run as one: the writes of a job whose outcome nobody checks wait, and go
//! to the connection's thread in one call with the next statement that needs it (or with the
//! job's release). Every statement sqlx runs is a round trip to that thread, and the one writer
//! is held across them, so a send's half-dozen inserts cost one trip instead of six.

use futures::TryStreamExt as _;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::queries::{Param, bind_params};

/// Statements to run as one, each written with its own `$1, $2, ...`: appending one renumbers
/// its placeholders after those already there.
#[derive(Debug, Default)]
pub(crate) struct StatementBatch {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
    /// How many statements were pushed, each answered by one result.
    pub(crate) statements: usize,
}

impl StatementBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.sql.is_empty()
    }

    pub(crate) fn push(&mut self, sql: &str, params: Vec<Param>) {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        let offset = self.params.len();
        let mut rest = sql;
        while let Some(at) = rest.find('$') {
            self.sql.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            match rest[..digits].parse::<usize>() {
                Ok(number) => self.sql.push_str(&(number + offset).to_string()),
                Err(_) => self.sql.push_str(&rest[..digits]),
            }
            rest = &rest[digits..];
        }
        self.sql.push_str(rest);
        self.params.extend(params);
        self.statements += 1;
    }
}

/// What running a batch gave: the rows of each statement that finished, and the rows-changed
/// count of the last one, with the error that stopped the rest, if any.
pub(crate) struct BatchOutcome {
    pub(crate) rows: Vec<Vec<SqliteRow>>,
    pub(crate) last_changed: u64,
    pub(crate) failure: Option<sqlx::Error>,
}

/// Runs `batch` in one call to the connection's thread.
pub(crate) async fn run(connection: &mut SqliteConnection, batch: &StatementBatch) -> BatchOutcome {
    // sqlx marks several statements in one query as deprecated, because only its SQLite driver
    // can run them; that driver is exactly where this runs, and the version is pinned.
    #[expect(deprecated, reason = "several statements in one query, on SQLite only")]
    let mut steps = bind_params(sqlx::query(&batch.sql), &batch.params).fetch_many(connection);
    let mut outcome = BatchOutcome {
        rows: Vec::new(),
        last_changed: 0,
        failure: None,
    };
    let mut rows = Vec::new();
    loop {
        match steps.try_next().await {
            Ok(Some(sqlx::Either::Left(done))) => {
                outcome.last_changed = done.rows_affected();
                outcome.rows.push(std::mem::take(&mut rows));
            }
            Ok(Some(sqlx::Either::Right(row))) => rows.push(row),
            Ok(None) => return outcome,
            Err(error) => {
                outcome.failure = Some(error);
                return outcome;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::queries::params;

    #[test]
    fn a_batch_renumbers_each_statements_placeholders_after_the_ones_before() {
        let mut batch = StatementBatch::default();
        batch.push("INSERT INTO a VALUES ($1, $2, $1)", params![1_i64, "x"]);
        batch.push("UPDATE b SET c = $2 WHERE d = $1", params![2_i64, 3_i64]);
        batch.push("RELEASE job", vec![]);
        assert_eq!(
            batch.sql,
            "INSERT INTO a VALUES ($1, $2, $1);\nUPDATE b SET c = $4 WHERE d = $3;\nRELEASE job"
        );
        assert_eq!(batch.params.len(), 4);
        assert_eq!(batch.statements, 3);
    }

    #[test]
    fn an_empty_batch_has_no_sql() {
        assert!(StatementBatch::default().is_empty());
    }
}
