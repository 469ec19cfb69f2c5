//! Teams' usage as previews read it (the dry-run's quota line, `/v1/me`, the catalog).
//! Admission never relies on it: a reservation sums the ledger inside its transaction.
//!
//! On SQLite one gateway owns the file, and every ledger write goes through its one writer,
//! so the writer keeps a book of each team's usage: loaded once at start, and changed by each
//! committed write before its caller is answered. Previews then read memory, exactly, and
//! never wait for the one connection behind a batch of writes. On PostgreSQL other replicas
//! write too, so usage is read from the database and cached for `storage.usage_cache_ms`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::StorageError;
use super::ledger::{Cost, ReservationState, state_in};
use super::sql::{Db, Target, query};

/// What one committed write changed in one team's usage (fields may be negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageChange {
    pub team: String,
    pub delta: Cost,
}

/// Every team's usage, kept exact by the writer (SQLite).
#[derive(Debug, Default)]
pub struct UsageBook {
    teams: Mutex<HashMap<String, Cost>>,
}

impl UsageBook {
    /// Sums the ledger per team; before any write, so no change can be missed or counted twice.
    pub async fn load(db: &Db) -> Result<Self, StorageError> {
        let rows = query(format!(
            "SELECT team, CAST(SUM(instances) AS BIGINT) AS instances, \
             CAST(SUM(nodes) AS BIGINT) AS nodes, CAST(SUM(storage_gb) AS BIGINT) AS storage_gb \
             FROM reservations WHERE {} GROUP BY team",
            state_in(&ReservationState::COUNTED)
        ))
        .fetch_all(db)
        .await?;
        let mut teams = HashMap::with_capacity(rows.len());
        for row in rows {
            let cost = Cost {
                instances: row.try_get("instances")?,
                nodes: row.try_get("nodes")?,
                storage_gb: row.try_get("storage_gb")?,
            };
            teams.insert(row.try_get("team")?, cost);
        }
        Ok(Self {
            teams: Mutex::new(teams),
        })
    }

    pub fn of(&self, team: &str) -> Cost {
        self.lock().get(team).copied().unwrap_or_default()
    }

    /// Called by the writer for a committed change only.
    pub fn apply(&self, change: &UsageChange) {
        let mut teams = self.lock();
        let usage = teams.entry(change.team.clone()).or_default();
        *usage = usage.plus(change.delta);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cost>> {
        // The map is consistent after every statement, so a panic elsewhere cannot tear it.
        self.teams.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a store answers [`super::Store::usage`].
#[derive(Debug, Clone)]
pub enum UsageView {
    Book(Arc<UsageBook>),
    Cached(moka::future::Cache<String, Cost>),
    Read,
}

impl UsageView {
    pub fn cached(ttl: Duration) -> Self {
        if ttl.is_zero() {
            return Self::Read;
        }
        Self::Cached(
            moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
        )
    }

    pub async fn usage(&self, db: &Db, team: &str) -> Result<Cost, StorageError> {
        let read = usage_of(db, team);
        match self {
            Self::Book(book) => Ok(book.of(team)),
            Self::Cached(cache) => cache
                .try_get_with_by_ref(team, read)
                .await
                .map_err(|error| (*error).clone()),
            Self::Read => read.await,
        }
    }

    /// After this gateway's own committed write: the next preview reads it.
    pub async fn changed(&self, team: &str) {
        if let Self::Cached(cache) = self {
            cache.invalidate(team).await;
        }
    }
}

/// What `team` uses: the cost of its pending, committed and deleting reservations.
pub(super) async fn usage_of(connection: impl Target, team: &str) -> Result<Cost, StorageError> {
    usage_where(connection, "", team, None).await
}

/// The team's usage in `region`; the default region also holds the rows from before
/// regions, which name none.
pub(super) async fn usage_in_region(
    connection: impl Target,
    team: &str,
    region: &str,
    default_region: bool,
) -> Result<Cost, StorageError> {
    let filter = if default_region {
        " AND (region = $2 OR region IS NULL)"
    } else {
        " AND region = $2"
    };
    usage_where(connection, filter, team, Some(region)).await
}

async fn usage_where(
    connection: impl Target,
    filter: &str,
    team: &str,
    region: Option<&str>,
) -> Result<Cost, StorageError> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(instances), 0) AS BIGINT) AS instances, \
         CAST(COALESCE(SUM(nodes), 0) AS BIGINT) AS nodes, \
         CAST(COALESCE(SUM(storage_gb), 0) AS BIGINT) AS storage_gb \
         FROM reservations WHERE team = $1{filter} AND {}",
        state_in(&ReservationState::COUNTED)
    );
    let mut statement = query(sql).bind(team);
    if let Some(region) = region {
        statement = statement.bind(region);
    }
    let row = statement.fetch_one(connection).await?;
    Ok(Cost {
        instances: row.try_get("instances")?,
        nodes: row.try_get("nodes")?,
        storage_gb: row.try_get("storage_gb")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(instances: i64) -> Cost {
        Cost {
            instances,
            nodes: 2 * instances,
            storage_gb: 100 * instances,
        }
    }

    #[test]
    fn the_book_adds_each_change_to_its_team_only() {
        let book = UsageBook::default();
        for delta in [cost(1), cost(2), cost(-1)] {
            book.apply(&UsageChange {
                team: "analytics".into(),
                delta,
            });
        }
        book.apply(&UsageChange {
            team: "payments".into(),
            delta: cost(5),
        });
        assert_eq!(book.of("analytics"), cost(2));
        assert_eq!(book.of("payments"), cost(5));
        assert_eq!(book.of("unknown"), Cost::default());
    }
}
