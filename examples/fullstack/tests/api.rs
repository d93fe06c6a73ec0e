//! The notes API through `berth::testing` with its real service: SQLite with the crate's
//! `migrations/sqlite/`, in-process and over the host's HTTP stack.

use berth::testing::TestGroup;
use berth::{Request, Response, StatusCode};
use notes::Note;
use serde_json::{json, Value};

fn start() -> TestGroup {
    TestGroup::builder(notes::berth_group())
        .migrations("db", "migrations")
        .start()
        .unwrap_or_else(|e| panic!("the notes group starts: {e}"))
}

fn send(g: &TestGroup, method: &str, path: &str, body: Option<Value>) -> berth::Result<Response> {
    let req = Request::new(method, path);
    g.request(match body {
        Some(b) => req.with_json(&b),
        None => req,
    })
}

fn list(g: &TestGroup) -> Vec<Note> {
    send(g, "GET", "/api/notes", None).expect("the list answers").json_body().expect("a list of notes")
}

fn create(g: &TestGroup, body: Value) -> Note {
    let res = send(g, "POST", "/api/notes", Some(body.clone())).unwrap_or_else(|e| panic!("{body} is created: {e}"));
    assert_eq!(res.status, StatusCode::CREATED, "{body}");
    res.json_body().expect("the created note")
}

#[test]
fn create_list_delete() {
    let g = start();
    assert!(list(&g).is_empty());

    let first = create(&g, json!({ "text": "  buy milk  " }));
    assert_eq!((first.id, first.text.as_str(), first.color.as_str()), (1, "buy milk", "yellow"));
    assert!(
        first.created_at.len() == 20 && first.created_at.ends_with('Z') && first.created_at.contains('T'),
        "created_at is an RFC 3339 UTC time: {}",
        first.created_at
    );
    let second = create(&g, json!({ "text": "call Ann", "color": "pink" }));
    assert_eq!((second.id, second.color.as_str()), (2, "pink"));
    let third = create(&g, json!({ "text": "x".repeat(280), "color": null }));
    assert_eq!(third.color, "yellow", "a null color is the default");
    assert_eq!(list(&g), vec![third.clone(), second.clone(), first.clone()], "newest first");

    let res = send(&g, "DELETE", "/api/notes/2", None).unwrap();
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty(), "a 204 has no body");
    assert_eq!(list(&g), vec![third, first]);
    let e = send(&g, "DELETE", "/api/notes/2", None).unwrap_err();
    assert_eq!(e.status(), StatusCode::NOT_FOUND, "{e}");
    assert!(e.message().contains("no note with id 2"), "{e}");
    assert_eq!(list(&g).len(), 2, "a failed delete changes nothing");
}

#[test]
fn invalid_notes_are_refused_with_their_fields() {
    let g = start();
    for (body, field) in [
        (json!({ "text": "" }), "text"),
        (json!({ "text": " \n\t " }), "text"),
        (json!({ "text": "é".repeat(281) }), "text"),
        (json!({ "text": "fine", "color": "purple" }), "color"),
        (json!({ "text": "fine", "color": "" }), "color"),
    ] {
        let e = send(&g, "POST", "/api/notes", Some(body.clone())).unwrap_err();
        assert_eq!((e.status(), e.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation"), "{body}: {e}");
        let paths: Vec<&str> = e.fields().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, [field], "{body}: {e}");
    }
    let e = send(&g, "POST", "/api/notes", Some(json!({ "text": "", "color": "purple" }))).unwrap_err();
    let mut paths: Vec<&str> = e.fields().iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["color", "text"], "every failing field is listed: {e}");
    let color = e.fields().iter().find(|f| f.path == "color").unwrap();
    assert!(color.message.contains("yellow, blue, green, pink"), "the message names the colors: {}", color.message);

    // 280 characters is the limit, counted in characters, not bytes.
    create(&g, json!({ "text": "é".repeat(280) }));

    for body in [json!({ "text": "ok", "colour": "red" }), json!({ "color": "blue" }), json!({ "text": 5 })] {
        let e = send(&g, "POST", "/api/notes", Some(body.clone())).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "a body that does not parse is a 400: {body}: {e}");
    }
    assert_eq!(list(&g).len(), 1, "refused notes were not stored");
}

#[test]
fn over_http_the_error_body_carries_the_fields() {
    let server = start().serve().expect("the notes group serves over HTTP");
    let res = server.post("/api/notes").json(&json!({ "text": "   " })).send();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text());
    let body: Value = res.json();
    assert_eq!(body["error"], "validation", "{body}");
    assert_eq!(body["fields"], json!([{ "path": "text", "message": "must not be blank" }]), "{body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");

    let res = server.post("/api/notes").json(&json!({ "text": "over http", "color": "green" })).send();
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text());
    let note: Note = res.json();
    let res = server.get("/api/notes").send();
    assert_eq!(res.json::<Vec<Note>>(), vec![note.clone()]);
    let res = server.delete(&format!("/api/notes/{}", note.id)).send();
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text());
    let res = server.delete(&format!("/api/notes/{}", note.id)).send();
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "{}", res.text());
    let res = server.get("/api/notes/1").send();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "only DELETE is routed for one note: {}", res.text());
}
