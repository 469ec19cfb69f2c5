//! The gauges `/metrics` reads at scrape time, from the state they describe: each team's
//! quota, the pending reservations, the cached IAM token. Reading them when scraped keeps
//! them exact without a background task, at one small query per scrape.

use crate::metrics::METRICS;
use crate::storage::{StorageError, now_ms};

use super::Gateway;

impl Gateway {
    /// Sets the scrape-time gauges. A failed read leaves its gauges as they were.
    pub async fn export_metrics(&self) -> Result<(), StorageError> {
        for (region, cloud) in self.clouds.iter() {
            cloud.breakers.export();
            if cloud.signs_with_access_key() {
                continue;
            }
            let expires_in = cloud.cached_token().await.map_or(-1.0, |token| {
                (token.expires_at - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0
            });
            METRICS
                .iam_token_expires_in_seconds
                .with_label_values(&[region])
                .set(expires_in);
        }

        let (pending, oldest) = self.store.pending_summary().await?;
        METRICS.reservations_pending.set(pending);
        let oldest_age_ms = oldest.map_or(0, |created| now_ms().saturating_sub(created).max(0));
        METRICS
            .reservations_pending_oldest_seconds
            .set(oldest_age_ms as f64 / 1000.0);

        // Teams that left the policy leave the gauges too.
        METRICS.quota_used.reset();
        METRICS.quota_limit.reset();
        let policy = self.policy.current();
        for (gauge, counts) in [
            (
                &METRICS.exception_requests_pending,
                self.store.pending_requests().await?,
            ),
            (
                &METRICS.instances_expiring,
                self.store.expiring_by_team().await?,
            ),
        ] {
            gauge.reset();
            for team in policy.file.teams.keys() {
                let count = counts
                    .iter()
                    .find_map(|(t, n)| (t == team).then_some(*n))
                    .unwrap_or(0);
                gauge.with_label_values(&[team.as_str()]).set(count);
            }
        }
        for (team, rules) in &policy.file.teams {
            let used = self.store.usage(team).await?;
            for (dimension, value) in [
                ("instances", used.instances),
                ("nodes", used.nodes),
                ("storage_gb", used.storage_gb),
            ] {
                METRICS
                    .quota_used
                    .with_label_values(&[team.as_str(), dimension])
                    .set(value);
            }
            if let Some(quota) = &rules.quota {
                for (dimension, limit) in [
                    ("instances", quota.instances),
                    ("nodes", quota.nodes),
                    ("storage_gb", quota.storage_gb),
                ] {
                    METRICS
                        .quota_limit
                        .with_label_values(&[team.as_str(), dimension])
                        .set(i64::from(limit));
                }
            }
        }
        Ok(())
    }
}
