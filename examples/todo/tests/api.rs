//! The todo API through `berth::testing` with its real services: SQLite with the crate's
//! `migrations/`, the embedded key-value store as the cache, and the `users` group
//! (`plugins/users`) loaded as the provider of the `users` service.

use berth::testing::TestGroup;
use berth::{Request, Response, StatusCode};
use serde_json::{json, Value};
use todo::Todo;
use users_api::{NewUser, User};

fn start() -> TestGroup {
    TestGroup::builder(todo::berth_group())
        .migrations("db", "migrations")
        .provider(users::berth_group())
        .start()
        .unwrap_or_else(|e| panic!("the todo group starts: {e}"))
}

fn send(g: &TestGroup, method: &str, path: &str, body: Option<Value>) -> berth::Result<Response> {
    let req = Request::new(method, path);
    g.request(match body {
        Some(b) => req.with_json(&b),
        None => req,
    })
}

fn todo_of(res: berth::Result<Response>) -> Todo {
    res.expect("a todo").json_body().expect("a todo as JSON")
}

/// Creates a user through the `users` export, as the provider stores it.
fn create_user(g: &TestGroup, name: &str) -> User {
    let ctx = g.group_context();
    let new = NewUser { name: name.into(), email: format!("{name}@example.com") };
    g.block_on(async { ctx.service("users")?.call("create", &new).await }).expect("the users service creates a user")
}

/// What the read-through cache holds for todo `id`.
fn cached(g: &TestGroup, id: i64) -> Option<Todo> {
    let ctx = g.group_context();
    g.block_on(async { ctx.kv("cache")?.get_json(&format!("todo/{id}")).await }).expect("the cache answers")
}

#[test]
fn create_list_get_update_delete() {
    let g = start();
    let list = |g: &TestGroup| -> Vec<Todo> { send(g, "GET", "/todos", None).unwrap().json_body().unwrap() };
    assert!(list(&g).is_empty());

    let res = send(&g, "POST", "/todos", Some(json!({ "title": "write tests" }))).unwrap();
    assert_eq!(res.status, StatusCode::CREATED);
    let first: Todo = res.json_body().unwrap();
    assert_eq!(first, Todo { id: 1, title: "write tests".into(), done: false, owner_id: None });
    let second = todo_of(send(&g, "POST", "/todos", Some(json!({ "title": "ship", "done": true }))));
    assert_eq!((second.id, second.done), (2, true));
    assert_eq!(list(&g), vec![first.clone(), second.clone()]);

    // A read fills the cache; an update changes the row and drops the cached entry.
    assert_eq!(cached(&g, 1), None);
    assert_eq!(todo_of(send(&g, "GET", "/todos/1", None)), first);
    assert_eq!(cached(&g, 1), Some(first.clone()));
    let updated = todo_of(send(&g, "PUT", "/todos/1", Some(json!({ "done": true }))));
    assert_eq!(updated, Todo { done: true, ..first.clone() });
    assert_eq!(cached(&g, 1), None, "the update invalidated the cache");
    assert_eq!(todo_of(send(&g, "GET", "/todos/1", None)), updated);
    let renamed = todo_of(send(&g, "PUT", "/todos/1", Some(json!({ "title": "write more tests" }))));
    assert_eq!((renamed.title.as_str(), renamed.done), ("write more tests", true));

    let res = send(&g, "DELETE", "/todos/1", None).unwrap();
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(cached(&g, 1), None);
    assert_eq!(send(&g, "GET", "/todos/1", None).unwrap_err().status(), StatusCode::NOT_FOUND);
    assert_eq!(send(&g, "DELETE", "/todos/1", None).unwrap_err().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        send(&g, "PUT", "/todos/1", Some(json!({ "done": false }))).unwrap_err().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(list(&g), vec![second]);
}

#[test]
fn invalid_todos_are_refused() {
    let g = start();
    for title in ["", "   ", &"x".repeat(501)] {
        let e = send(&g, "POST", "/todos", Some(json!({ "title": title }))).unwrap_err();
        assert_eq!((e.status(), e.code()), (StatusCode::UNPROCESSABLE_ENTITY, "validation"), "{title:?}: {e}");
        assert!(e.message().contains("`title`"), "{e}");
        assert_eq!(e.fields().len(), 1, "{title:?}: {e}");
        assert_eq!(e.fields()[0].path, "title");
    }
    let e = send(&g, "POST", "/todos", Some(json!({ "title": "ok", "colour": "red" }))).unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST, "unknown fields are refused: {e}");
    let created = todo_of(send(&g, "POST", "/todos", Some(json!({ "title": "keep" }))));
    let e = send(&g, "PUT", &format!("/todos/{}", created.id), Some(json!({ "title": "" }))).unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(todo_of(send(&g, "GET", "/todos/1", None)).title, "keep", "a refused update changes nothing");
    let all: Vec<Todo> = send(&g, "GET", "/todos", None).unwrap().json_body().unwrap();
    assert_eq!(all.len(), 1, "refused todos were not stored: {all:?}");
}

#[test]
fn owners_are_checked_against_the_users_service() {
    let g = start();
    let ann = create_user(&g, "ann");
    let owned = todo_of(send(&g, "POST", "/todos", Some(json!({ "title": "ann's", "owner_id": ann.id }))));
    assert_eq!(owned.owner_id, Some(ann.id as i64));

    let e = send(&g, "POST", "/todos", Some(json!({ "title": "nobody's", "owner_id": 999 }))).unwrap_err();
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.message().contains("owner 999 is not a known user"), "{e}");
}
