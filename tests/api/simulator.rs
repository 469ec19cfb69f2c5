//! The simulator on its own: it must refuse what the real cloud refuses, naming the field.

use serde_json::{Value, json};
use starrocks_gateway::demo::simulator::SimulatorConfig;

use crate::helpers::TestApp;

const TARGET: &str = "40dc4c5729f14aad893e2dcd5baf6a15in07";

fn documented_example() -> Value {
    json!({
        "name": "htap-ff64",
        "engine": {"type": "star-rocks", "version": "3.1"},
        "ha": {"mode": "Single"},
        "fe_flavor_id": "afef3bfd-ac7c-32e1-ba44-c388acbb196a",
        "be_flavor_id": "de565db8-0a96-37ea-9388-61167624712c",
        "db_root_pwd": "Test@123!",
        "fe_count": 1, "be_count": 1, "az_mode": "single",
        "fe_volume": {"io_type": "SSD", "capacity_in_gb": 50},
        "be_volume": {"io_type": "SSD", "capacity_in_gb": 50},
        "az_code": "az", "time_zone": "UTC+08:00",
        "tags_info": {"sys_tags": [{"key": "_sys_enterprise_project_id", "value": "0"}]}
    })
}

async fn iam_token(app: &TestApp, password: &str) -> reqwest::Response {
    let config = SimulatorConfig::default();
    app.client
        .post(format!(
            "{}/v3/auth/tokens?nocatalog=true",
            app.stack.simulator_url
        ))
        .json(&json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": config.user, "password": password, "domain": {"name": config.domain}}}},
            "scope": {"project": {"id": config.project_id}}
        }}))
        .send()
        .await
        .expect("answer")
}

async fn token(app: &TestApp) -> String {
    let response = iam_token(app, &SimulatorConfig::default().password).await;
    assert_eq!(response.status(), 201);
    response.headers()["x-subject-token"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn create(
    app: &TestApp,
    token: Option<&str>,
    project: &str,
    instance: &str,
    body: &Value,
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!(
            "{}/v3/{project}/instances/{instance}/starrocks",
            app.stack.simulator_url
        ))
        .json(body);
    if let Some(token) = token {
        request = request.header("X-Auth-Token", token);
    }
    let response = request.send().await.expect("answer");
    (
        response.status().as_u16(),
        response.json().await.expect("JSON"),
    )
}

#[tokio::test]
async fn iam_issues_a_project_token_in_the_header_with_its_expiry_in_the_body() {
    let app = TestApp::spawn().await;

    let response = iam_token(&app, &SimulatorConfig::default().password).await;

    assert_eq!(response.status(), 201);
    assert!(response.headers()["x-subject-token"].len() > 1000);
    let body: Value = response.json().await.expect("JSON");
    let expires_at = body["token"]["expires_at"].as_str().expect("expires_at");
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).expect("ISO-8601");
    let lifetime = expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(lifetime > chrono::Duration::hours(23) && lifetime <= chrono::Duration::hours(24));
    assert_eq!(
        body["token"]["project"]["id"],
        SimulatorConfig::default().project_id
    );
}

#[tokio::test]
async fn iam_refuses_wrong_credentials_with_401() {
    let app = TestApp::spawn().await;
    assert_eq!(iam_token(&app, "wrong").await.status(), 401);
}

#[tokio::test]
async fn the_documented_example_request_is_accepted_in_the_documented_shape() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;

    let (status, body) = create(&app, Some(&token), &project, TARGET, &documented_example()).await;

    assert_eq!(status, 201, "{body}");
    let instance = &body["instance"];
    assert!(
        instance["id"]
            .as_str()
            .is_some_and(|id| id.len() == 36 && id.ends_with("in17"))
    );
    assert!(body["job_id"].is_string());
    for field in [
        "az_code",
        "az_mode",
        "name",
        "engine",
        "vpc_id",
        "security_group_id",
        "sub_net_id",
        "db_user",
        "port",
        "ha_mode",
        "pay_info",
        "enable_ssl",
        "status",
        "region",
        "tags_info",
    ] {
        assert!(!instance[field].is_null(), "{field} is missing");
    }
    assert_eq!(instance["tags_info"]["tags"], json!([]));
}

#[tokio::test]
async fn missing_invalid_or_expired_tokens_are_401_apigw_0301() {
    let app = TestApp::spawn().await;
    let project = SimulatorConfig::default().project_id;
    let (missing, body) = create(&app, None, &project, TARGET, &documented_example()).await;
    assert_eq!(
        (missing, body["error_code"].as_str()),
        (401, Some("APIGW.0301"))
    );
    let (unknown, _) = create(
        &app,
        Some("forged"),
        &project,
        TARGET,
        &documented_example(),
    )
    .await;
    assert_eq!(unknown, 401);
    let token = token(&app).await;
    app.expire_cloud_tokens().await;
    let (expired, _) = create(&app, Some(&token), &project, TARGET, &documented_example()).await;
    assert_eq!(expired, 401);
}

#[tokio::test]
async fn unknown_taurusdb_instances_and_projects_are_not_found() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;

    let (status, body) = create(
        &app,
        Some(&token),
        &project,
        "ffffffffffffffffffffffffffffffffin07",
        &documented_example(),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("DBS.05000044"))
    );
    let (status, body) = create(
        &app,
        Some(&token),
        "ffffffffffffffffffffffffffffffff",
        TARGET,
        &documented_example(),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("APIGW.0101"))
    );
}

#[tokio::test]
async fn every_documented_rule_refuses_with_an_error_naming_the_field() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;
    let change = |path: &[&str], value: Value| {
        let mut body = documented_example();
        let mut slot = &mut body;
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = value;
        body
    };
    let remove = |key: &str| {
        let mut body = documented_example();
        body.as_object_mut().expect("object").remove(key);
        body
    };
    let cluster_of = |fe_flavor: &str, be_flavor: &str, az: &str| {
        let mut body = documented_example();
        body["ha"]["mode"] = json!("Cluster");
        body["fe_count"] = json!(3);
        body["be_count"] = json!(3);
        body["fe_flavor_id"] = json!(fe_flavor);
        body["be_flavor_id"] = json!(be_flavor);
        body["az_code"] = json!(az);
        body
    };
    const LARGE_FE: &str = "d3c8e2e4-5179-3c90-9f3c-7e3a2b8c4d32";
    const LARGE_BE: &str = "e4d9f3f5-628a-3da1-a04d-8f4b3c9d5e43";
    // (where the rule comes from, the request, the field its refusal names)
    let cases = [
        (
            "API notes: name: 4-64 chars, starts with a letter",
            change(&["name"], json!("1htap")),
            "name",
        ),
        (
            "API notes: name: 4-64 chars",
            change(&["name"], json!("abc")),
            "name",
        ),
        (
            "API notes: engine.type: star-rocks only",
            change(&["engine", "type"], json!("click-house")),
            "engine.type",
        ),
        (
            "API notes: ha.mode: Single or Cluster",
            change(&["ha", "mode"], json!("Double")),
            "ha.mode",
        ),
        (
            "API notes: Single: fe_count = be_count = 1",
            change(&["fe_count"], json!(3)),
            "fe_count",
        ),
        (
            "API notes: Cluster: 3-10 each",
            cluster_of(LARGE_FE, LARGE_BE, "az")
                .as_object()
                .map(|body| {
                    let mut body = Value::Object(body.clone());
                    body["fe_count"] = json!(1);
                    body
                })
                .unwrap_or_default(),
            "fe_count",
        ),
        (
            "page: the password contains at least three types of the following",
            change(&["db_root_pwd"], json!("weakpassword")),
            "db_root_pwd",
        ),
        (
            "page: the password consists of 8 to 32 characters",
            change(&["db_root_pwd"], json!("Sh0rt!")),
            "db_root_pwd",
        ),
        (
            "page: If you enter a weak password, the system automatically determines that the password is invalid",
            change(&["db_root_pwd"], json!("Password1")),
            "db_root_pwd",
        ),
        (
            "page: If you enter a weak password, the system automatically determines that the password is invalid",
            change(&["db_root_pwd"], json!("Aa123456")),
            "db_root_pwd",
        ),
        (
            "page: az_mode: Currently, only single AZ is supported",
            change(&["az_mode"], json!("multi")),
            "az_mode",
        ),
        (
            "page: az_code | Yes | String | AZ code (one of the region's zones)",
            change(&["az_code"], json!("mars-1z")),
            "az_code",
        ),
        ("page: az_code | Yes", remove("az_code"), "az_code"),
        (
            "page: fe_flavor_id: You can use the value of id in the response to querying HTAP specifications",
            change(
                &["fe_flavor_id"],
                json!("00000000-0000-0000-0000-000000000000"),
            ),
            "fe_flavor_id",
        ),
        (
            "API notes: Flavor item: instance_mode (Cluster|Single): a Cluster flavor in Single mode",
            change(&["be_flavor_id"], json!(LARGE_BE)),
            "be_flavor_id",
        ),
        (
            "API notes: Flavor item: az_status (map AZ -> normal|unsupported|sellout)",
            cluster_of(LARGE_FE, LARGE_BE, "cn-north-4c"),
            "fe_flavor_id",
        ),
        (
            "page: capacity_in_gb: Disk capacity, in GB. Increment: 10 GB",
            change(&["fe_volume", "capacity_in_gb"], json!(55)),
            "fe_volume.capacity_in_gb",
        ),
        (
            "API notes: Storage-type item: min_volume_size (40 GB here)",
            change(&["fe_volume", "capacity_in_gb"], json!(10)),
            "fe_volume.capacity_in_gb",
        ),
        (
            "TaurusDB constraints: storage space of pay-per-use instances at most 128,000 GB",
            change(&["be_volume", "capacity_in_gb"], json!(1_000_000)),
            "be_volume.capacity_in_gb",
        ),
        (
            "page: io_type: The value can be obtained from the response to querying HTAP engine resources",
            change(&["be_volume", "io_type"], json!("FLOPPY")),
            "be_volume.io_type",
        ),
        (
            "page: tags_info | Yes; API notes: key _sys_enterprise_project_id",
            change(&["tags_info", "sys_tags"], json!([])),
            "tags_info.sys_tags",
        ),
        ("page: tags_info | Yes", remove("tags_info"), "tags_info"),
        (
            "API notes: the page documents only _sys_enterprise_project_id",
            change(
                &["tags_info", "sys_tags"],
                json!([
                    {"key": "_sys_enterprise_project_id", "value": "0"},
                    {"key": "_sys_cost_center", "value": "CC-1042"}
                ]),
            ),
            "tags_info.sys_tags",
        ),
        (
            "API notes: value the enterprise project ID (\"0\" is the default project)",
            change(
                &["tags_info", "sys_tags"],
                json!([{"key": "_sys_enterprise_project_id", "value": "project-x"}]),
            ),
            "tags_info.sys_tags",
        ),
        (
            "page: region_code: mandatory for yearly/monthly billing",
            change(&["pay_info"], json!({"pay_model": "1"})),
            "pay_info.period",
        ),
        (
            "page: time_zone: The default time zone is UTC+08:00 (a UTC offset)",
            change(&["time_zone"], json!("Asia/Shanghai")),
            "time_zone",
        ),
        (
            "page: time_zone: a UTC offset, hours up to 14 and minutes under 60",
            change(&["time_zone"], json!("UTC+99:99")),
            "time_zone",
        ),
        (
            "page: security_group_id: the security group ID (a UUID)",
            change(&["security_group_id"], json!("sg-1")),
            "security_group_id",
        ),
        (
            "page: the request parameters table lists every field",
            change(&["surprise"], json!(true)),
            "surprise",
        ),
    ];
    for (rule, body, field) in cases {
        let (status, answer) = create(&app, Some(&token), &project, TARGET, &body).await;

        assert_eq!(status, 400, "{rule}: {answer}");
        let code = answer["error_code"].as_str().unwrap_or_default();
        assert!(code.starts_with("DBS."), "{rule}: {answer}");
        let message = answer["error_msg"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{rule}: {field} not named in {answer}"
        );
    }
    assert_eq!(app.sim_stats().await.instances, 0);
}

/// The request header table: "Content-Type | Yes | … Range application/json".
#[tokio::test]
async fn a_create_without_a_json_content_type_is_refused() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;
    let url = format!(
        "{}/v3/{project}/instances/{TARGET}/starrocks",
        app.stack.simulator_url
    );
    let body = documented_example().to_string();
    let send = |content_type: Option<&'static str>| {
        let mut request = app
            .client
            .post(&url)
            .header("X-Auth-Token", &token)
            .body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        request.send()
    };

    let missing = send(None).await.expect("answer");
    let text = send(Some("text/plain")).await.expect("answer");
    let json = send(Some("application/json;charset=UTF-8"))
        .await
        .expect("answer");

    for (response, case) in [(missing, "missing"), (text, "text/plain")] {
        assert_eq!(response.status(), 400, "{case}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(answer["error_code"], "DBS.200001", "{case}");
        assert!(
            answer["error_msg"]
                .as_str()
                .is_some_and(|m| m.contains("Content-Type")),
            "{case}: {answer}"
        );
    }
    assert_eq!(json.status(), 201);
    assert_eq!(app.sim_stats().await.instances, 1);
}

/// `region_code`: "AZ. This parameter is mandatory for yearly/monthly billing." Nothing on
/// the page forbids it with pay-per-use, so the simulator accepts it there.
#[tokio::test]
async fn a_pay_per_use_create_may_name_a_region_code() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;
    let mut body = documented_example();
    body["region_code"] = json!("cn-north-4");

    let (status, answer) = create(&app, Some(&token), &project, TARGET, &body).await;

    assert_eq!(status, 201, "{answer}");
}

/// The documented create example answers `"port" : 3306`; the instance's detail names the
/// same port in `port_info.mysql_port`.
#[tokio::test]
async fn the_detail_names_the_port_the_create_answered() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;

    let (status, created) =
        create(&app, Some(&token), &project, TARGET, &documented_example()).await;
    let id = created["instance"]["id"].as_str().expect("an id");
    let detail: Value = app
        .client
        .get(format!(
            "{}/v3/{project}/instances/{TARGET}/starrocks/{id}",
            app.stack.simulator_url
        ))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");

    assert_eq!(status, 201);
    assert_eq!(created["instance"]["port"], 3306);
    assert_eq!(
        detail["instances"][0]["port_info"]["mysql_port"], 3306,
        "{detail}"
    );
}

/// The flavors API ("Flavor item: `id`, `spec_code`, …, `instance_mode`, `az_status`") and
/// the storage-type API ("`name`, `az_status`, `min_volume_size`") serve the catalog the
/// simulator validates creates against.
#[tokio::test]
async fn the_catalog_is_served_as_the_flavor_and_storage_type_apis_answer() {
    let app = TestApp::spawn().await;
    let token = token(&app).await;
    let project = SimulatorConfig::default().project_id;
    let get = |path: String, token: Option<String>| {
        let mut request = app.client.get(format!(
            "{}/v3/{project}/htap/{path}",
            app.stack.simulator_url
        ));
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        async move {
            let response = request.send().await.expect("answer");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };

    let (status, flavors) = get(
        "flavors/star-rocks?availability_zone_mode=single".into(),
        Some(token.clone()),
    )
    .await;
    assert_eq!(status, 200);
    let example = flavors["flavors"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|f| f["id"] == "afef3bfd-ac7c-32e1-ba44-c388acbb196a")
        })
        .cloned()
        .expect("the page example's FE flavor");
    assert_eq!(example["instance_mode"], "Single");
    assert_eq!(example["az_status"]["az"], "normal");
    for field in ["spec_code", "type", "vcpus", "ram"] {
        assert!(example[field].is_string(), "{field}: {example}");
    }
    let (_, one) = get(
        format!(
            "flavors/star-rocks?spec_code={}",
            example["spec_code"].as_str().unwrap_or_default()
        ),
        Some(token.clone()),
    )
    .await;
    assert_eq!(one["flavors"].as_array().map(Vec::len), Some(1));

    let (status, storage) = get("storage-type/star-rocks".into(), Some(token)).await;
    assert_eq!(status, 200);
    assert!(
        storage["storage_type"].as_array().is_some_and(|all| all
            .iter()
            .any(|s| s["name"] == "SSD" && s["min_volume_size"] == 40)),
        "{storage}"
    );

    let (status, body) = get("flavors/star-rocks".into(), None).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("APIGW.0301"))
    );
}
