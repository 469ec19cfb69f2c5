//! A soak: 10,000 mixed requests (valid, invalid, unauthenticated, denied, over quota,
//! rate-limited) while the cloud fails, throttles and loses answers now and then. Afterwards
//! memory has stayed bounded, reconciliation leaves nothing pending, and the ledger's live
//! instances are exactly the cloud's. Its own binary, so the memory it reads is its own.

// The shared test harness: this binary uses part of it.
#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::collections::BTreeSet;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use starrocks_gateway::config::LimitSettings;
use starrocks_gateway::storage::sql::query;

use helpers::TestApp;

const REQUESTS: usize = 10_000;

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One request of the mix, by its number; returns its status.
async fn request(app: &TestApp, tokens: &[String], i: usize) -> u16 {
    let alice = &tokens[i % tokens.len()];
    let sent = match i % 10 {
        0 | 5 => app.authed(Method::POST, "/v1/starrocks", alice).json(
            &json!({"name": format!("soak-{i:05}"), "target": "analytics-prod", "size": "small"}),
        ),
        1 => app
            .authed(Method::POST, "/v1/starrocks/dry-run", alice)
            .json(&json!({"name": "soak-dry", "target": "analytics-prod", "size": "small"})),
        2 => app
            .authed(Method::POST, "/v1/starrocks", alice)
            .json(&json!({"name": "1-bad name", "target": "", "size": 7})),
        3 => app.authed(Method::GET, "/v1/starrocks", &format!("{alice}x")),
        4 => app.authed(Method::GET, "/v1/starrocks", alice),
        6 => app.authed(Method::GET, "/v1/me", alice),
        7 => app
            .authed(Method::POST, "/v1/starrocks", alice)
            .json(&json!({"name": "soak-big", "target": "analytics-prod", "size": "xlarge"})),
        8 => app.authed(Method::GET, "/v1/starrocks/no-such-instancein17", alice),
        _ => app.authed(Method::GET, "/v1/catalog", alice),
    };
    sent.send().await.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_requests_leave_memory_bounded_and_the_ledger_equal_to_the_cloud() {
    let app = TestApp::builder()
        .settings(|s| {
            s.limits = LimitSettings {
                creates_burst: 3,
                creates_per_minute: 60,
                ..LimitSettings::off()
            };
            s.cloud.request_timeout_ms = 1_000;
            s.cloud.read_cache_ms = 0;
            s.reconcile.interval_secs = 0;
            s.reconcile.grace_secs = 0;
        })
        .policy(
            starrocks_gateway::demo::EXAMPLE_POLICY
                .replacen("instances = 5", "instances = 40", 1)
                .replacen("nodes = 30", "nodes = 400", 1),
        )
        .spawn()
        .await;
    let tokens: Vec<String> = (0..8)
        .map(|n| app.token_for(&format!("soak-{n}"), "analytics"))
        .collect();

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut warm_kib = 0;
    for chunk in 0..REQUESTS / 1_000 {
        let faults = match chunk % 4 {
            0 => json!({"fail_next_creates": 2, "fail_status": 503}),
            1 => json!({"throttle_next_calls": 3}),
            2 => json!({"lose_next_answers": 1}),
            _ => json!({"fail_next_reads": 2, "fail_status": 500}),
        };
        app.set_faults(faults).await;
        let answered: Vec<u16> = futures_util::stream::iter(chunk * 1_000..(chunk + 1) * 1_000)
            .map(|i| request(&app, &tokens, i))
            .buffer_unordered(32)
            .collect()
            .await;
        for status in answered {
            *statuses.entry(status).or_default() += 1;
        }
        if chunk == 1 {
            warm_kib = resident_kib();
        }
    }
    let end_kib = resident_kib();
    let report: Value = app
        .authed(Method::POST, "/v1/admin/reconcile", &app.admin())
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let ledger: BTreeSet<String> =
        query("SELECT instance_id FROM reservations WHERE state IN ('committed', 'deleting')")
            .fetch_all(app.stack.store.db())
            .await
            .expect("ledger")
            .iter()
            .filter_map(|row| row.try_get::<Option<String>>("instance_id").ok().flatten())
            .collect();
    let pending: i64 = query("SELECT COUNT(*) AS n FROM reservations WHERE state = 'pending'")
        .fetch_one(app.stack.store.db())
        .await
        .expect("count")
        .try_get("n")
        .expect("n");
    let cloud: Vec<Value> = app
        .client
        .get(format!("{}/_sim/instances", app.stack.simulator_url))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let cloud: BTreeSet<String> = cloud
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect();

    assert_eq!(
        statuses.get(&0),
        None,
        "every request was answered: {statuses:?}"
    );
    assert_eq!(statuses.get(&500), None, "no internal error: {statuses:?}");
    for expected in [200, 201, 400, 401, 403, 404, 429] {
        assert!(
            statuses.contains_key(&expected),
            "the mix produced {expected}: {statuses:?}"
        );
    }
    assert_eq!(pending, 0, "reconciliation settled everything: {report}");
    assert!(!ledger.is_empty());
    assert_eq!(ledger, cloud, "the ledger equals the cloud");
    assert!(
        end_kib < warm_kib + 64 * 1024,
        "memory stayed bounded: {warm_kib} KiB after 2,000 requests, {end_kib} KiB after {REQUESTS}"
    );
}
