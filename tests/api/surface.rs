use std::path::Path;

use starrocks_gateway::openapi;

use crate::helpers::{TestApp, problem, sample, scrape_until};

/// The committed spec must equal the generated one. Run with `UPDATE_OPENAPI=1` to accept a change.
#[test]
fn the_committed_openapi_document_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    let generated = openapi::pretty_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("writing openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date; run `UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
}

#[tokio::test]
async fn the_served_spec_is_the_generated_one_and_swagger_ui_is_served() {
    let app = TestApp::spawn().await;

    let served: serde_json::Value = app.get("/openapi.json").await.json().await.expect("JSON");
    let swagger = app.get("/swagger-ui/").await;

    let generated: serde_json::Value = serde_json::from_str(&openapi::pretty_json()).expect("JSON");
    assert_eq!(served, generated);
    assert_eq!(swagger.status(), 200);
    assert!(swagger.text().await.expect("html").contains("swagger"));
}

#[tokio::test]
async fn the_spec_documents_bearer_auth_and_every_error_of_create() {
    let spec: serde_json::Value = serde_json::from_str(&openapi::pretty_json()).expect("JSON");
    let create = &spec["paths"]["/v1/starrocks"]["post"];
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(create["security"][0]["bearer"], serde_json::json!([]));
    for status in [
        "201", "400", "401", "403", "413", "415", "502", "503", "504",
    ] {
        assert!(
            create["responses"][status].is_object(),
            "{status} is undocumented"
        );
    }
}

#[tokio::test]
async fn the_portal_page_and_probes_are_served() {
    let app = TestApp::spawn().await;

    let portal = app.get("/").await;
    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(portal.status(), 200);
    assert!(portal.text().await.expect("html").contains("/v1/starrocks"));
    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(ready["identity_provider_keys"], true);
    assert_eq!(ready["cloud"], true);
    assert_eq!(ready["ready_when"], "every_target_region");
    for region in ["cn-north-4", "cn-east-3"] {
        assert_eq!(ready["regions"][region]["credentials"], true, "{ready}");
        assert_eq!(ready["regions"][region]["holds_targets"], true, "{ready}");
    }
    assert_eq!(ready["regions"]["cn-north-4"]["default"], true);
    assert_eq!(ready["database"], true);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problem_json() {
    let app = TestApp::spawn().await;

    let missing = app.get("/no/such/thing").await;
    let wrong_method = app
        .client
        .delete(format!("{}/v1/starrocks", app.stack.gateway_url))
        .bearer_auth(app.alice())
        .send()
        .await
        .expect("answer");

    assert_eq!(missing.status(), 404);
    assert_eq!(problem(missing).await["code"], "not_found");
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET, HEAD, POST");
    assert_eq!(problem(wrong_method).await["code"], "method_not_allowed");
    let trace = app
        .client
        .request(
            reqwest::Method::TRACE,
            format!("{}/healthz", app.stack.gateway_url),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(trace.status(), 405);
    assert_eq!(trace.headers()["allow"], "GET, HEAD");
}

/// The router and the spec come from one route list: every documented path answers every
/// undocumented method with `405`, naming exactly the documented ones in `Allow` (and `HEAD`
/// wherever `GET` is).
#[tokio::test]
async fn every_documented_path_allows_exactly_its_documented_methods() {
    let app = TestApp::spawn().await;
    let spec: serde_json::Value = serde_json::from_str(&openapi::pretty_json()).expect("JSON");
    let admin = app.admin();

    for (path, item) in spec["paths"].as_object().expect("paths") {
        let documented: Vec<String> = ["get", "head", "post", "delete"]
            .into_iter()
            .filter(|method| {
                item.get(*method).is_some() || (*method == "head" && item.get("get").is_some())
            })
            .map(str::to_uppercase)
            .collect();
        let concrete = path.replace("{id}", "some-id");
        let response = app
            .authed(reqwest::Method::PUT, &concrete, &admin)
            .send()
            .await
            .expect("answer");

        assert_eq!(response.status(), 405, "PUT {path}");
        assert_eq!(
            response.headers()["allow"],
            documented.join(", ").as_str(),
            "Allow of {path}"
        );
        assert_eq!(problem(response).await["code"], "method_not_allowed");
    }
}

#[tokio::test]
async fn dry_run_is_never_taken_for_an_instance_id() {
    let app = TestApp::spawn().await;

    let response = app
        .authed(reqwest::Method::GET, "/v1/starrocks/dry-run", &app.alice())
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_token_minted_by_the_demo_identity_provider_creates_an_instance() {
    let app = TestApp::spawn().await;
    let minted: serde_json::Value = app
        .client
        .get(format!(
            "{}/token?sub=carol&team=analytics",
            app.stack.idp_url
        ))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    let token = minted["access_token"].as_str().expect("a token");

    let response = app.create(token, &crate::helpers::small_instance()).await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_bad_query_string_is_a_problem_naming_it() {
    let app = TestApp::spawn().await;

    let response = app
        .authed(
            reqwest::Method::GET,
            "/v1/starrocks?limit=lots",
            &app.alice(),
        )
        .send()
        .await
        .expect("answer");

    assert_eq!(response.status(), 400);
    let problem = problem(response).await;
    assert_eq!(problem["code"], "invalid_parameter");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("limit")),
        "{problem}"
    );
}

#[tokio::test]
async fn an_empty_filter_counts_as_absent_but_an_empty_typed_parameter_is_refused() {
    let app = TestApp::spawn().await;
    let list = |query: &'static str| {
        app.authed(
            reqwest::Method::GET,
            &format!("/v1/starrocks?{query}"),
            &app.alice(),
        )
        .send()
    };

    let blank_team = list("team=").await.expect("answer");
    let blank_limit = list("limit=").await.expect("answer");
    let blank_page = list("page=").await.expect("answer");

    assert_eq!(blank_team.status(), 200);
    for (response, field) in [(blank_limit, "limit"), (blank_page, "page")] {
        assert_eq!(response.status(), 400, "{field}");
        let problem = problem(response).await;
        assert_eq!(problem["code"], "invalid_parameter");
        assert_eq!(problem["errors"][0]["field"], field);
    }
}

#[tokio::test]
async fn metrics_count_requests_decisions_and_cloud_calls() {
    // The metrics are the process's, shared with the tests running beside this one, which
    // only ever add: each series must have grown by at least this test's own create.
    const SERIES: [&str; 5] = [
        r#"starrocks_gateway_http_requests_total{method="POST",route="/v1/starrocks",status="201"}"#,
        r#"starrocks_gateway_decisions_total{action="create",outcome="created"}"#,
        r#"starrocks_gateway_cloud_calls_total{operation="create",region="cn-north-4",result="201"}"#,
        r#"starrocks_gateway_cloud_call_duration_seconds_count{operation="create",region="cn-north-4"}"#,
        r#"starrocks_gateway_iam_token_fetches_total{result="ok"}"#,
    ];
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let app = TestApp::spawn().await;
    let before = app.get("/metrics").await.text().await.expect("text");
    assert_eq!(
        app.create(&app.alice(), &crate::helpers::small_instance())
            .await
            .status(),
        201
    );

    let metrics = app.get("/metrics").await;

    assert_eq!(metrics.status(), 200);
    let after = metrics.text().await.expect("text");
    for series in SERIES {
        assert!(
            value(&after, series) >= value(&before, series) + 1.0,
            "{series} did not move: {} -> {}",
            value(&before, series),
            value(&after, series)
        );
    }
    assert!(
        value(
            &after,
            r#"starrocks_gateway_jwks_fetches_total{result="ok"}"#
        ) >= 1.0,
        "the keys were fetched"
    );
    assert!(!after.contains("in17"), "instance ids never become labels");
}

#[tokio::test]
async fn metrics_show_quota_pending_reservations_the_iam_token_and_the_keys() {
    let app = TestApp::spawn().await;
    let alice = app.alice();
    assert_eq!(
        app.create(&alice, &crate::helpers::small_instance())
            .await
            .status(),
        201
    );
    let used = r#"starrocks_gateway_quota_used{dimension="instances",team="analytics"}"#;
    let limit = r#"starrocks_gateway_quota_limit{dimension="instances",team="analytics"}"#;
    let pending = "starrocks_gateway_reservations_pending";

    let text = scrape_until(&app, |text| {
        sample(text, used) == Some(1.0) && sample(text, pending) == Some(0.0)
    })
    .await;
    assert_eq!(sample(&text, used), Some(1.0), "{text}");
    assert_eq!(sample(&text, limit), Some(5.0), "the policy's quota");
    assert_eq!(
        sample(
            &text,
            r#"starrocks_gateway_quota_limit{dimension="storage_gb",team="payments"}"#
        ),
        Some(500.0),
        "every policy team, used or not"
    );
    assert_eq!(sample(&text, pending), Some(0.0));
    let lifetime = sample(
        &text,
        r#"starrocks_gateway_iam_token_expires_in_seconds{region="cn-north-4"}"#,
    )
    .expect("IAM");
    assert!(
        (82_800.0..=86_400.0).contains(&lifetime),
        "a fresh 24 h token: {lifetime}"
    );
    assert!(sample(&text, "starrocks_gateway_jwks_keys").expect("keys") >= 1.0);
    let age = sample(&text, "starrocks_gateway_jwks_age_seconds").expect("age");
    assert!((0.0..60.0).contains(&age), "keys loaded at start: {age}");
    assert_eq!(
        sample(
            &text,
            r#"starrocks_gateway_cloud_breaker_state{operation="create",region="cn-north-4"}"#
        ),
        Some(0.0),
        "closed"
    );

    // A create held at the cloud is pending until it answers.
    app.set_faults(serde_json::json!({"hold_next_creates": 1}))
        .await;
    let mut second = crate::helpers::small_instance();
    second["name"] = "metrics-held".into();
    let (held, text) = futures_util::join!(app.create(&alice, &second), async {
        app.wait_until_held(1).await;
        let text = scrape_until(&app, |text| sample(text, pending) == Some(1.0)).await;
        app.release_held().await;
        text
    });
    assert_eq!(held.status(), 201);
    assert_eq!(sample(&text, pending), Some(1.0), "{text}");
    let oldest = sample(
        &text,
        "starrocks_gateway_reservations_pending_oldest_seconds",
    );
    assert!(
        oldest.is_some_and(|age| (0.0..10.0).contains(&age)),
        "{oldest:?}"
    );
    assert_eq!(
        sample(&text, used),
        Some(2.0),
        "a pending reservation counts against the quota"
    );
}

#[tokio::test]
async fn head_is_answered_wherever_get_is_without_a_body() {
    let app = TestApp::spawn().await;
    let alice = app.alice();

    for path in [
        "/",
        "/healthz",
        "/openapi.json",
        "/swagger-ui/",
        "/v1/me",
        "/v1/catalog",
        "/v1/starrocks",
    ] {
        let head = app
            .authed(reqwest::Method::HEAD, path, &alice)
            .send()
            .await
            .expect("answer");
        let get = app
            .authed(reqwest::Method::GET, path, &alice)
            .send()
            .await
            .expect("answer");
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "HEAD {path}"
        );
        assert!(head.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
}

#[tokio::test]
async fn the_documents_refuse_other_methods_with_405_and_unknown_files_with_a_problem() {
    let app = TestApp::spawn().await;

    for path in ["/openapi.json", "/swagger-ui/", "/"] {
        let posted = app
            .client
            .post(format!("{}{path}", app.stack.gateway_url))
            .send()
            .await
            .expect("answer");
        assert_eq!(posted.status(), 405, "POST {path}");
        assert_eq!(posted.headers()["allow"], "GET, HEAD", "POST {path}");
        assert_eq!(problem(posted).await["code"], "method_not_allowed");
    }
    let missing = app.get("/swagger-ui/no-such-file.js").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(problem(missing).await["code"], "not_found");
}

/// Generated clients are typed end to end: node groups have a schema, each error response
/// shows an example of its own code, and `/v1/me`'s example shows quota and usage.
#[test]
fn the_spec_types_node_groups_and_gives_each_error_its_own_example() {
    let spec: serde_json::Value = serde_json::from_str(&openapi::pretty_json()).expect("JSON");
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["StarRocksDetail"]["properties"]["groups"]["items"]["$ref"],
        "#/components/schemas/InstanceNodeGroup"
    );
    assert_eq!(
        schemas["InstanceNodeGroup"]["properties"]["group_type"]["type"],
        "string"
    );
    let me = &schemas["Me"]["example"]["teams"][0];
    assert!(me["quota"]["instances"].is_u64() && me["usage"]["instances"].is_u64());

    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let Some(example) = response["content"]["application/problem+json"].get("example")
                else {
                    continue;
                };
                checked += 1;
                assert_eq!(
                    example["status"].to_string(),
                    *status,
                    "{method} {path} {status}: {example}"
                );
                let code = example["code"].as_str().expect("code");
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| d.contains(&format!("`{code}`"))),
                    "{method} {path} {status}: the example's code {code} is one the description names"
                );
            }
        }
    }
    assert!(
        checked > 30,
        "most error responses carry an example: {checked}"
    );
    assert_eq!(
        spec["paths"]["/v1/me"]["get"]["responses"]["401"]["content"]["application/problem+json"]["example"]
            ["code"],
        "unauthenticated"
    );
    assert_eq!(
        spec["paths"]["/v1/starrocks"]["post"]["responses"]["503"]["content"]["application/problem+json"]
            ["example"]["code"],
        "upstream_unavailable"
    );
}
