//! The app's original tests, written once over a [`Client`]: `tests/bookmarks.rs` runs each
//! against the plain router and against the Berth group over HTTP.

use serde_json::{json, Value};

use super::{unique, Client};

/// Creates a bookmark and returns it, checking the 201.
async fn create(c: &impl Client, url: &str, tags: &[&str]) -> Value {
    let res = c.json("POST", "/bookmarks", &json!({ "url": url, "title": format!("About {url}"), "tags": tags })).await;
    assert_eq!(res.status, 201, "{}", res.text());
    res.json()
}

fn url(name: &str) -> String {
    format!("https://example.com/{}", unique(name))
}

pub async fn health_answers_ok(c: &impl Client) {
    let res = c.get("/health").await;
    assert_eq!((res.status, res.text().as_str()), (200, "ok"));
}

pub async fn create_answers_201_with_a_location_to_fetch_it(c: &impl Client) {
    let tag = unique("t");
    let res =
        c.json("POST", "/bookmarks", &json!({ "url": url("a"), "title": "  Axum docs ", "tags": [tag, tag] })).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let made = res.json();
    assert_eq!(made["title"], "Axum docs", "the title is trimmed");
    assert_eq!(made["tags"], json!([tag]), "repeated tags are kept once");
    let id = made["id"].as_u64().expect("an id");
    let location = res.header("location").expect("a Location header");
    assert_eq!(location, format!("{}/bookmarks/{id}", c.base()), "the Location carries where the app is mounted");
    let fetched = c.get(location.strip_prefix(c.base()).expect("under the base")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), made);
    assert_eq!(fetched.header("content-type"), Some("application/json"));
}

pub async fn an_unknown_bookmark_is_404_in_the_apps_error_shape(c: &impl Client) {
    let res = c.get("/bookmarks/987654321").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.json(), json!({ "error": "not_found", "message": "no bookmark 987654321" }));
    assert_eq!(c.delete("/bookmarks/987654321").await.status, 404);
    assert_eq!(c.json("PATCH", "/bookmarks/987654321", &json!({ "title": "x" })).await.status, 404);
}

pub async fn an_id_that_is_not_a_number_is_refused_by_the_path_extractor(c: &impl Client) {
    let res = c.get("/bookmarks/seven").await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("Cannot parse"), "{}", res.text());
}

pub async fn a_known_url_is_409_naming_the_bookmark_it_is(c: &impl Client) {
    let url = url("dup");
    let first = create(c, &url, &[]).await;
    let res = c.json("POST", "/bookmarks", &json!({ "url": url, "title": "again" })).await;
    assert_eq!(res.status, 409);
    assert_eq!(res.json()["error"], "duplicate");
    let message = res.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(message.contains(&format!("bookmark {}", first["id"])), "{message}");
}

pub async fn an_invalid_bookmark_is_422_naming_the_field(c: &impl Client) {
    for (body, field) in [
        (json!({ "url": "ftp://example.com/x", "title": "t" }), "`url`"),
        (json!({ "url": url("t"), "title": "   " }), "`title`"),
        (json!({ "url": url("t"), "title": "x".repeat(201) }), "`title`"),
        (json!({ "url": url("t"), "title": "t", "tags": ["Not A Tag"] }), "`tags`"),
    ] {
        let res = c.json("POST", "/bookmarks", &body).await;
        assert_eq!(res.status, 422, "{body}: {}", res.text());
        assert_eq!(res.json()["error"], "invalid");
        assert!(res.json()["message"].as_str().unwrap_or_default().starts_with(field), "{}", res.text());
    }
}

pub async fn a_body_the_json_extractor_refuses_keeps_axums_status(c: &impl Client) {
    let res = c.send("POST", "/bookmarks", Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_eq!(res.json()["error"], "rejected");
    let res = c.send("POST", "/bookmarks", Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!(res.status, 415, "{}", res.text());
    let res = c.json("POST", "/bookmarks", &json!({ "title": "no url" })).await;
    assert_eq!(res.status, 422, "{}", res.text());
    assert!(res.json()["message"].as_str().unwrap_or_default().contains("url"), "{}", res.text());
}

pub async fn the_list_filters_by_tag_and_limits(c: &impl Client) {
    let tag = unique("tag");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create(c, &url(&format!("l{i}")), &[&tag, "common"]).await["id"].clone());
    }
    create(c, &url("other"), &["common"]).await;
    let res = c.get(&format!("/bookmarks?tag={tag}")).await;
    assert_eq!(res.status, 200);
    let listed: Vec<Value> = res.json().as_array().expect("a list").iter().map(|b| b["id"].clone()).collect();
    assert_eq!(listed, ids, "oldest first, only the tag's");
    let res = c.get(&format!("/bookmarks?tag={tag}&limit=2")).await;
    assert_eq!(res.json().as_array().map(Vec::len), Some(2));
    for limit in ["0", "101"] {
        let res = c.get(&format!("/bookmarks?tag={tag}&limit={limit}")).await;
        assert_eq!(res.status, 422, "limit {limit}: {}", res.text());
    }
    let res = c.get("/bookmarks?limit=many").await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_eq!(res.json()["error"], "rejected");
}

pub async fn patch_changes_what_it_is_given(c: &impl Client) {
    let made = create(c, &url("p"), &["before"]).await;
    let path = format!("/bookmarks/{}", made["id"]);
    let res = c.json("PATCH", &path, &json!({ "tags": ["after"] })).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["tags"], json!(["after"]));
    assert_eq!(res.json()["title"], made["title"], "what is not given stays");
    let res = c.json("PATCH", &path, &json!({ "title": "" })).await;
    assert_eq!(res.status, 422);
    assert_eq!(c.get(&path).await.json()["tags"], json!(["after"]));
}

pub async fn delete_answers_204_then_404(c: &impl Client) {
    let made = create(c, &url("d"), &[]).await;
    let path = format!("/bookmarks/{}", made["id"]);
    let res = c.delete(&path).await;
    assert_eq!(res.status, 204);
    assert!(res.body.is_empty());
    assert_eq!(c.get(&path).await.status, 404);
    assert_eq!(c.delete(&path).await.status, 404);
}

pub async fn tags_counts_the_bookmarks_of_each_tag(c: &impl Client) {
    let (a, b) = (unique("a"), unique("b"));
    create(c, &url("t1"), &[&a, &b]).await;
    create(c, &url("t2"), &[&a]).await;
    let res = c.get("/tags").await;
    assert_eq!(res.status, 200);
    assert_eq!((res.json()[&a].clone(), res.json()[&b].clone()), (json!(2), json!(1)));
}

pub async fn an_unknown_route_is_404_and_a_wrong_method_405(c: &impl Client) {
    assert_eq!(c.get("/nothing-here").await.status, 404);
    let res = c.send("PUT", "/bookmarks", None, Vec::new()).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET,HEAD,POST"));
}

/// Paced with `tokio::time::sleep`: passes where a tokio runtime is reachable (the plain router
/// under `#[tokio::test]`), not in a plugin (see `tests/berth.rs`).
pub async fn export_lists_every_bookmark_as_csv(c: &impl Client) {
    let made = create(c, &url("csv"), &[]).await;
    let res = c.get("/export").await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("text/csv"));
    let text = res.text();
    assert!(text.starts_with("id,url,title\n"), "{text}");
    assert!(text.contains(&format!("{},{},", made["id"], made["url"].as_str().unwrap_or_default())), "{text}");
}
