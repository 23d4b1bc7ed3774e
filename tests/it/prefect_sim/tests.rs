//! The simulator's contract, from a client's side: real HTTP on loopback with reqwest.

#![cfg(test)]

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use super::{PrefectSim, ReadLag, SimOptions};

/// A client that shows redirects instead of following them.
fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Api {
    sim: PrefectSim,
    http: Client,
}

impl Api {
    fn new(options: SimOptions) -> Api {
        Api {
            sim: PrefectSim::start(options),
            http: client(),
        }
    }

    /// A request to `A/{path}` with the valid key.
    fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/{path}", self.sim.account_url()))
            .bearer_auth(self.sim.token())
    }

    fn post(&self, path: &str, body: Value) -> Response {
        self.req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .unwrap()
    }

    fn get(&self, path: &str) -> Response {
        self.req(reqwest::Method::GET, path).send().unwrap()
    }

    fn create_bot(&self, name: &str) -> Value {
        let resp = self.post("bots/", json!({ "name": name }));
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().unwrap()
    }
}

/// Status and JSON body.
fn answer(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The `type` and `loc` of a 422's first issue.
fn issue(resp: Response) -> (String, Value) {
    let (status, body) = answer(resp);
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let first = &body["detail"][0];
    assert!(first["msg"].is_string(), "{body}");
    (
        first["type"].as_str().unwrap().to_owned(),
        first["loc"].clone(),
    )
}

fn is_pnb_key(key: &str) -> bool {
    key.len() == 40
        && key.starts_with("pnb_")
        && key[4..].chars().all(|c| c.is_ascii_alphanumeric())
}

#[test]
fn sim_create_shows_the_key_once_and_reads_mask_it() {
    let api = Api::new(SimOptions::default());
    let created = api.create_bot("ci-bot");
    let key = created["api_key"]["key"].as_str().unwrap().to_owned();
    assert!(is_pnb_key(&key), "{key}");
    assert_eq!(created["account_role_name"], "Member");
    assert_eq!(created["account_id"], api.sim.account_id().to_string());
    assert!(created["api_key"].get("masked_key").is_none());
    assert!(api.sim.key_accepted(&key));

    let id = created["id"].as_str().unwrap();
    let masked = format!("pnb_...{}", &key[36..]);
    let (status, read) = answer(api.get(&format!("bots/{id}")));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["api_key"]["masked_key"], masked.as_str());
    assert!(read["api_key"].get("key").is_none());
    assert!(read["actor_id"].is_string());
    let (_, listed) = answer(api.post("bots/filter", json!({})));
    assert_eq!(listed[0]["api_key"]["masked_key"], masked.as_str());
    assert!(listed[0]["api_key"].get("key").is_none());
    let (_, keys) = answer(api.get(&format!("bots/{id}/read_bot_api_keys")));
    assert_eq!(keys["active_key"]["masked_key"], masked.as_str());
    assert_eq!(keys["rotating_keys"], json!([]));
    for body in [read.to_string(), listed.to_string(), keys.to_string()] {
        assert!(!body.contains(&key), "a read leaked the secret: {body}");
    }
}

#[test]
fn sim_pages_1000_bots_in_5_pages_of_200() {
    let api = Api::new(SimOptions::default());
    for i in 0..1000 {
        api.sim.add_bot(&format!("bot-{i:04}"), "Member", None);
    }
    let mut seen = std::collections::BTreeSet::new();
    for page in 0..5 {
        let (status, bots) =
            answer(api.post("bots/filter", json!({ "limit": 200, "offset": page * 200 })));
        assert_eq!(status, StatusCode::OK);
        let bots = bots.as_array().unwrap();
        assert_eq!(bots.len(), 200, "page {page}");
        for b in bots {
            assert!(seen.insert(b["name"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(seen.len(), 1000);
    let (_, past) = answer(api.post("bots/filter", json!({ "offset": 1000 })));
    assert_eq!(past, json!([]));
    // Without limit (as the official provider sends it) only the first 200 come back.
    let (_, first) = answer(api.post("bots/filter", json!({})));
    assert_eq!(first.as_array().unwrap().len(), 200);
    let (_, named) = answer(api.post(
        "bots/filter",
        json!({ "service_accounts": { "name": { "any_": ["bot-0999", "bot-0001", "nope"] } } }),
    ));
    let names: Vec<&str> = named
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bot-0001", "bot-0999"]);
    assert_eq!(api.sim.requests().to("POST bots/filter"), 8);
}

#[test]
fn sim_refuses_bad_credentials_other_accounts_and_unknown_ids() {
    let api = Api::new(SimOptions::default());
    let url = format!("{}/bots/filter", api.sim.account_url());
    for auth in [None, Some("pnu_wrong"), Some("")] {
        let mut req = api.http.post(&url).json(&json!({}));
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        let (status, body) = answer(req.send().unwrap());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({ "detail": "Invalid authentication credentials" })
        );
    }
    // A bot's own key is not the account's admin key.
    let (_, bot_key) = api.sim.add_bot("b", "Member", None);
    let resp = api
        .http
        .post(&url)
        .bearer_auth(bot_key)
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let other = format!(
        "{}/accounts/{}/bots/filter",
        api.sim.url(),
        uuid::Uuid::new_v4()
    );
    let resp = api
        .http
        .post(other)
        .bearer_auth(api.sim.token())
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let (status, body) = answer(api.get(&format!("bots/{}", uuid::Uuid::new_v4())));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["detail"].is_string());
    let resp = api.get("bots/not-a-uuid");
    assert_eq!(issue(resp), ("uuid_parsing".into(), json!(["path", "id"])));
    let resp = api.get("no/such/route");
    assert_eq!(
        answer(resp),
        (StatusCode::NOT_FOUND, json!({ "detail": "Not Found" }))
    );
}

#[test]
fn sim_refuses_a_duplicate_bot_name_with_409_and_changes_nothing() {
    let api = Api::new(SimOptions::default());
    api.create_bot("dup");
    let (status, body) = answer(api.post("bots/", json!({ "name": "dup" })));
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].is_string());
    assert_eq!(api.sim.bots().len(), 1);
    // Renaming onto a taken name is refused too.
    let other = api.create_bot("other");
    let resp = api
        .req(
            reqwest::Method::PATCH,
            &format!("bots/{}", other["id"].as_str().unwrap()),
        )
        .json(&json!({ "name": "dup" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(api.sim.bot_named("other").is_some());
}

#[test]
fn sim_requires_content_length_and_caps_bodies_at_5_mib() {
    let api = Api::new(SimOptions::default());
    // A streamed body goes out chunked, without Content-Length.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(b"{\"name\":\"x\"}".to_vec()));
    let resp = api
        .req(reqwest::Method::POST, "bots/")
        .header("content-type", "application/json")
        .body(chunked)
        .send()
        .unwrap();
    assert_eq!(answer(resp).0, StatusCode::LENGTH_REQUIRED);
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let resp = api
        .req(reqwest::Method::POST, "bots/")
        .header("content-type", "application/json")
        .body(big)
        .send();
    // The 413 comes before the body is read; the client may still be writing it when the
    // server closes, and then it sees the closed connection instead of the answer.
    match resp {
        Ok(resp) => assert_eq!(answer(resp).0, StatusCode::PAYLOAD_TOO_LARGE),
        Err(e) => assert!(e.is_request(), "refused mid-body, not another failure: {e}"),
    }
    assert!(api.sim.bots().is_empty());
    // reqwest sends no `Content-Length` at all on a POST without a body: a client must send
    // `{}` (or the header) even where the body is optional, such as rotate_api_key.
    let resp = api
        .req(reqwest::Method::POST, "bots/filter")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::LENGTH_REQUIRED);
    let resp = api
        .req(reqwest::Method::POST, "bots/filter")
        .header("content-length", "0")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[test]
fn sim_answers_invalid_bodies_with_pydantic_422s() {
    let api = Api::new(SimOptions::default());
    let cases = [
        (
            "bots/",
            json!({ "name": "a", "extra": 1 }),
            "extra_forbidden",
            json!(["body", "extra"]),
        ),
        ("bots/", json!({}), "missing", json!(["body", "name"])),
        (
            "bots/",
            json!({ "name": 5 }),
            "string_type",
            json!(["body", "name"]),
        ),
        (
            "bots/",
            json!({ "name": "x".repeat(5001) }),
            "string_too_long",
            json!(["body", "name"]),
        ),
        (
            "bots/",
            json!({ "name": "a", "api_key_expiration": "tomorrow" }),
            "datetime_from_date_parsing",
            json!(["body", "api_key_expiration"]),
        ),
        (
            "bots/",
            json!({ "name": "a", "account_role_id": "nope" }),
            "uuid_parsing",
            json!(["body", "account_role_id"]),
        ),
        (
            "bots/filter",
            json!({ "limit": 201 }),
            "less_than_equal",
            json!(["body", "limit"]),
        ),
        (
            "bots/filter",
            json!({ "offset": -1 }),
            "greater_than_equal",
            json!(["body", "offset"]),
        ),
        (
            "bots/filter",
            json!({ "service_accounts": { "name": { "all_": ["a"] } } }),
            "extra_forbidden",
            json!(["body", "service_accounts", "name", "all_"]),
        ),
        (
            "workspace_roles/",
            json!({ "name": "r", "scopes": ["see_flows", "launch_rockets"] }),
            "enum",
            json!(["body", "scopes", 1]),
        ),
    ];
    for (path, body, kind, loc) in cases {
        let got = issue(api.post(path, body.clone()));
        assert_eq!(got, (kind.to_owned(), loc), "{path} {body}");
    }
    let resp = api
        .req(reqwest::Method::POST, "bots/")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(issue(resp).0, "json_invalid");
    // Extra top-level keys of a filter body are ignored, as FastAPI does for embedded bodies.
    assert_eq!(
        api.post("bots/filter", json!({ "whatever": 1 })).status(),
        StatusCode::OK
    );
    assert!(api.sim.bots().is_empty());
    assert!(api.sim.workspace_role_id("r").is_none());
}

#[test]
fn sim_rotation_with_overlap_keeps_the_old_key_until_it_expires() {
    let api = Api::new(SimOptions::default());
    let created = api.create_bot("rotor");
    let id = created["id"].as_str().unwrap();
    let first = created["api_key"]["key"].as_str().unwrap().to_owned();

    for secs in [-1, 172_801] {
        let resp = api.post(
            &format!("bots/{id}/rotate_api_key"),
            json!({ "old_key_expires_in_seconds": secs }),
        );
        assert_eq!(issue(resp).1, json!(["body", "old_key_expires_in_seconds"]));
    }
    assert!(
        api.sim.key_accepted(&first),
        "a refused rotation changed nothing"
    );

    let (status, rotated) = answer(api.post(
        &format!("bots/{id}/rotate_api_key"),
        json!({ "api_key_expiration": null, "old_key_expires_in_seconds": 60 }),
    ));
    assert_eq!(status, StatusCode::CREATED);
    let second = rotated["api_key"]["key"].as_str().unwrap().to_owned();
    assert!(is_pnb_key(&second) && second != first);
    assert!(api.sim.key_accepted(&first) && api.sim.key_accepted(&second));
    let (_, keys) = answer(api.get(&format!("bots/{id}/read_bot_api_keys")));
    assert_eq!(keys["rotating_keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        keys["active_key"]["masked_key"],
        format!("pnb_...{}", &second[36..])
    );

    api.sim.advance_clock(time::Duration::seconds(59));
    assert!(api.sim.key_accepted(&first));
    api.sim.advance_clock(time::Duration::seconds(2));
    assert!(
        !api.sim.key_accepted(&first),
        "the old key outlived its overlap"
    );
    assert!(api.sim.key_accepted(&second));
    let (_, keys) = answer(api.get(&format!("bots/{id}/read_bot_api_keys")));
    assert_eq!(keys["rotating_keys"], json!([]));

    // No overlap (null, or no body at all): the old key stops at once.
    let resp = api
        .req(reqwest::Method::POST, &format!("bots/{id}/rotate_api_key"))
        .header("content-length", "0")
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(!api.sim.key_accepted(&second));
}

#[test]
fn sim_deletes_one_rotating_key_but_not_the_active_one() {
    let api = Api::new(SimOptions::default());
    let (id, old) = api.sim.add_bot("k", "Member", None);
    let new = api.sim.rotate_out_of_band(id, Some(3600));
    let bot = api.sim.bot_named("k").unwrap();
    let rotating = bot.rotating_keys[0].id;
    let active = bot.active_key.id;
    let del = |key| {
        api.req(
            reqwest::Method::DELETE,
            &format!("bots/{id}/delete_bot_api_key/{key}"),
        )
        .send()
        .unwrap()
    };
    assert_eq!(del(active).status(), StatusCode::CONFLICT);
    assert_eq!(answer(del(rotating)), (StatusCode::OK, Value::Null));
    assert!(!api.sim.key_accepted(&old));
    assert!(api.sim.key_accepted(&new));
    assert_eq!(del(rotating).status(), StatusCode::NOT_FOUND);
}

#[test]
fn sim_mimics_fastapi_trailing_slash_redirects() {
    let api = Api::new(SimOptions::default());
    let a = api.sim.account_url();
    // Missing slash on `bots/`: 307 to the slashed path, whatever the method.
    let resp = api
        .req(reqwest::Method::POST, "bots")
        .json(&json!({ "name": "x" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(resp.headers()["location"], format!("{a}/bots/").as_str());
    // An extra slash on `bots/filter`: 307 to the path without it.
    let resp = api.post("bots/filter/", json!({}));
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("{a}/bots/filter").as_str()
    );
    // The path exists, the method does not: 405.
    let (status, body) = answer(api.get("bots/"));
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body, json!({ "detail": "Method Not Allowed" }));
    assert!(api.sim.bots().is_empty(), "a redirect wrote nothing");
    // A client that follows the 307 re-sends the POST with its body.
    let following = Client::new();
    let resp = following
        .post(format!("{a}/bots"))
        .bearer_auth(api.sim.token())
        .json(&json!({ "name": "followed" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[test]
fn sim_rate_limits_the_configured_share_with_retry_after() {
    let api = Api::new(SimOptions {
        rate_limited_share: 0.25,
        retry_after_secs: 1,
        ..SimOptions::default()
    });
    let mut limited = 0;
    for _ in 0..20 {
        let resp = api.post("bots/filter", json!({}));
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body: Value = resp.json().unwrap();
            assert!(body["detail"].is_string());
            limited += 1;
        } else {
            assert_eq!(resp.status(), StatusCode::OK);
        }
    }
    assert_eq!(limited, 5);
    assert_eq!(api.sim.requests().rate_limited, 5);
    assert_eq!(api.sim.requests().total, 20);
}

#[test]
fn sim_lost_answers_leave_the_write_done() {
    let api = Api::new(SimOptions {
        lost_answer_share: 1.0,
        ..SimOptions::default()
    });
    let resp = api.post("bots/", json!({ "name": "ghost" }));
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(resp.text().unwrap(), "");
    let bot = api.sim.bot_named("ghost").expect("the write happened");
    // Reads are never lost; the client finds the bot and can recover it.
    let (status, listed) = answer(api.post(
        "bots/filter",
        json!({ "service_accounts": { "name": { "any_": ["ghost"] } } }),
    ));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["id"], bot.id.to_string());
    // A refused write is not "lost": the client sees the refusal.
    let (status, _) = answer(api.post("bots/", json!({ "name": "ghost" })));
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(api.sim.requests().answers_lost, 1);
}

#[test]
fn sim_reads_lag_a_create_for_the_configured_reads() {
    let api = Api::new(SimOptions {
        read_lag: ReadLag::Reads(2),
        ..SimOptions::default()
    });
    let created = api.create_bot("slow");
    let id = created["id"].as_str().unwrap();
    assert!(
        created["actor_id"].is_string(),
        "the create answer is complete"
    );
    let (_, first) = answer(api.get(&format!("bots/{id}")));
    assert!(first["actor_id"].is_null());
    let (_, listed) = answer(api.post("bots/filter", json!({})));
    assert_eq!(listed, json!([]));
    let (_, third) = answer(api.get(&format!("bots/{id}")));
    assert_eq!(third["actor_id"], created["actor_id"]);
    // An update lags too: reads show the old name for two reads.
    let resp = api
        .req(reqwest::Method::PATCH, &format!("bots/{id}"))
        .json(&json!({ "name": "fast" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let names: Vec<Value> = (0..3)
        .map(|_| answer(api.get(&format!("bots/{id}"))).1["name"].clone())
        .collect();
    assert_eq!(names, [json!("slow"), json!("slow"), json!("fast")]);
}

#[test]
fn sim_workspace_roles_and_bot_access() {
    let api = Api::new(SimOptions::default());
    let ws = api.sim.add_workspace("prod");
    let (bot, _) = api.sim.add_bot("deployer", "Member", None);
    let (_, found) = answer(api.post(
        "workspaces/filter",
        json!({ "workspaces": { "handle": { "any_": ["prod"] } } }),
    ));
    assert_eq!(found[0]["id"], ws.to_string());

    let (_, builtins) = answer(api.post(
        "workspace_roles/filter",
        json!({ "workspace_roles": { "is_global": true } }),
    ));
    let names: Vec<&str> = builtins
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Owner", "Developer", "Runner", "Viewer", "Worker"]);
    assert!(
        builtins
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["account_id"].is_null())
    );
    let viewer = api.sim.workspace_role_id("Viewer").unwrap();
    let resp = api
        .req(
            reqwest::Method::DELETE,
            &format!("workspace_roles/{viewer}"),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let (status, role) = answer(api.post(
        "workspace_roles/",
        json!({ "name": "deploy", "description": "", "scopes": ["manage_deployments"],
                "inherited_role_id": null }),
    ));
    assert_eq!(status, StatusCode::CREATED);
    let scopes = role["scopes"].as_array().unwrap();
    assert!(
        scopes.contains(&json!("see_deployments")),
        "reads expand implied scopes"
    );
    let role_id = role["id"].as_str().unwrap().to_owned();

    let w = format!("workspaces/{ws}/bot_access/");
    let (status, accesses) =
        answer(api.post(&w, json!([{ "bot_id": bot, "workspace_role_id": role_id }])));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(accesses[0]["bot_name"], "deployer");
    let access_id = accesses[0]["id"].as_str().unwrap().to_owned();
    // Upsert: a second call replaces the role, same record; an object gets an object back.
    let (_, single) = answer(api.post(&w, json!({ "bot_id": bot, "workspace_role_id": viewer })));
    assert_eq!(single["id"], access_id.as_str());
    assert_eq!(single["workspace_role_id"], viewer.to_string());
    let (_, listed) = answer(api.post(&format!("{w}filter"), json!({})));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        answer(api.get(&format!("{w}{access_id}"))).0,
        StatusCode::OK
    );
    let resp = api
        .req(reqwest::Method::DELETE, &format!("{w}{access_id}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        answer(api.get(&format!("{w}{access_id}"))).0,
        StatusCode::NOT_FOUND
    );
    assert!(api.sim.accesses(ws).is_empty());
    // An unknown bot is 404 and nothing is written.
    let resp = api.post(
        &w,
        json!([{ "bot_id": uuid::Uuid::new_v4(), "workspace_role_id": viewer }]),
    );
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(api.sim.accesses(ws).is_empty());
}

#[test]
fn sim_reads_lag_a_create_for_the_configured_time_on_the_sim_clock() {
    let api = Api::new(SimOptions {
        read_lag: ReadLag::Millis(60_000),
        ..SimOptions::default()
    });
    let created = api.create_bot("later");
    let id = created["id"].as_str().unwrap();
    for _ in 0..3 {
        assert!(answer(api.get(&format!("bots/{id}"))).1["actor_id"].is_null());
    }
    api.sim.advance_clock(time::Duration::seconds(61));
    assert_eq!(
        answer(api.get(&format!("bots/{id}"))).1["actor_id"],
        created["actor_id"]
    );
    let (_, listed) = answer(api.post("bots/filter", json!({})));
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn sim_counts_requests_by_route_and_serves_the_scope_catalogue() {
    let api = Api::new(SimOptions::default());
    let (id, _) = api.sim.add_bot("counted", "Admin", None);
    api.get(&format!("bots/{id}"));
    api.get(&format!("bots/{id}"));
    api.post("bots/", json!({ "name": "n" }));
    let resp = api
        .http
        .get(format!("{}/workspace_scopes", api.sim.url()))
        .bearer_auth(api.sim.token())
        .send()
        .unwrap();
    let (status, catalogue) = answer(resp);
    assert_eq!(status, StatusCode::OK);
    let catalogue = catalogue.as_array().unwrap();
    assert_eq!(catalogue.len(), 61);
    let manage = catalogue
        .iter()
        .find(|s| s["name"] == "manage_flows")
        .unwrap();
    assert_eq!(manage["see_scope"], "see_flows");
    let requests = api.sim.requests();
    assert_eq!(requests.to("GET bots/{id}"), 2);
    assert_eq!(requests.to("POST bots/"), 1);
    assert_eq!(requests.to("GET /api/workspace_scopes"), 1);
    assert_eq!(requests.total, 4);
    assert_eq!(
        api.sim.bot_named("counted").unwrap().account_role_name,
        "Admin"
    );
}

#[test]
fn sim_refuses_changes_to_built_in_roles_and_unknown_references() {
    let api = Api::new(SimOptions::default());
    let owner = api.sim.workspace_role_id("Owner").unwrap();
    let resp = api
        .req(reqwest::Method::PATCH, &format!("workspace_roles/{owner}"))
        .json(&json!({ "name": "Boss" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(api.sim.workspace_role_id("Owner").is_some());

    let resp = api.post(
        "bots/",
        json!({ "name": "x", "account_role_id": uuid::Uuid::new_v4() }),
    );
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = api.post(
        &format!("workspaces/{}/bot_access/filter", uuid::Uuid::new_v4()),
        json!({}),
    );
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A custom role cannot be the parent of another.
    let (_, custom) = answer(api.post("workspace_roles/", json!({ "name": "c" })));
    let resp = api.post(
        "workspace_roles/",
        json!({ "name": "d", "inherited_role_id": custom["id"] }),
    );
    assert_eq!(issue(resp).1, json!(["body", "inherited_role_id"]));
    let (_, mine) = answer(api.post(
        "workspace_roles/filter",
        json!({ "workspace_roles": { "is_global": false } }),
    ));
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert!(api.sim.bots().is_empty());
}

#[test]
fn sim_out_of_band_changes_show_through_the_api() {
    let api = Api::new(SimOptions::default());
    let ws = api.sim.add_workspace("staging");
    let (id, first) = api.sim.add_bot("oob", "Member", None);
    let second = api.sim.rotate_out_of_band(id, Some(600));
    let (_, keys) = answer(api.get(&format!("bots/{id}/read_bot_api_keys")));
    assert_eq!(
        keys["active_key"]["masked_key"],
        format!("pnb_...{}", &second[36..])
    );
    assert_eq!(
        keys["rotating_keys"][0]["masked_key"],
        format!("pnb_...{}", &first[36..])
    );
    assert!(keys["rotating_keys"][0]["expiration"].is_string());

    api.sim.set_access_out_of_band(ws, id, Some("Runner"));
    let (_, listed) = answer(api.post(&format!("workspaces/{ws}/bot_access/filter"), json!({})));
    let runner = api.sim.workspace_role_id("Runner").unwrap();
    assert_eq!(listed[0]["workspace_role_id"], runner.to_string());

    // Deleting the bot takes its keys and its accesses with it.
    let resp = api
        .req(reqwest::Method::DELETE, &format!("bots/{id}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert!(!api.sim.key_accepted(&first) && !api.sim.key_accepted(&second));
    assert!(api.sim.accesses(ws).is_empty());
    assert_eq!(
        api.get(&format!("bots/{id}")).status(),
        StatusCode::NOT_FOUND
    );
}
