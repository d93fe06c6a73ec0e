//! `GET /openapi.json` and `berth openapi`: the OpenAPI 3.1 document of the groups' HTTP
//! functions from their handler signatures, checked by a real validator (PyPI
//! `openapi-spec-validator`).

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{group, workspace, TestHost};

/// Three groups with schemas, services and a provider (also the typed client's test host).
pub(crate) fn groups() -> String {
    format!(
        "[services.db]\nkind = \"sqlite\"\n[services.cache]\nkind = \"kv\"\n[services.userstore]\nkind = \"kv\"\n{}{}{}",
        group("plugins/users"),
        group("examples/todo"),
        group("examples/hello")
    )
}

/// Runs the real validator on `doc`; its complaint, if any.
fn validate(doc: &Value) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = Command::new(crate::peers::python())
        .args(["-c", "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')"])
        .arg(&file)
        .output()
        .expect("run the validator");
    if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_of_the_loaded_groups_is_valid_openapi_with_their_types() {
    let h = TestHost::start(&groups()).await;
    let res = h.get("/openapi.json").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let doc = res.json();
    validate(&doc).unwrap_or_else(|e| panic!("not valid OpenAPI 3.1: {e}\n{doc:#}"));
    assert_eq!(doc["openapi"], "3.1.0");

    // POST /todos: the validated `NewTodo` body, a `Todo` answer, 422 and the error body.
    let create = &doc["paths"]["/todos"]["post"];
    assert_eq!(create["operationId"], "todo.create");
    assert_eq!(create["tags"], json!(["todo"]));
    assert_eq!(create["requestBody"]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/NewTodo");
    assert_eq!(
        create["responses"]["2XX"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Todo"
    );
    assert!(create["responses"]["422"].is_object(), "{create:#}");
    assert_eq!(
        create["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    let new_todo = &doc["components"]["schemas"]["NewTodo"];
    assert_eq!(new_todo["required"], json!(["title"]), "{new_todo:#}");
    assert_eq!(new_todo["properties"]["title"]["type"], "string");

    // GET /todos/{id}: the route parameter with `Path<i64>`'s type.
    let read = &doc["paths"]["/todos/{id}"]["get"];
    let param = &read["parameters"][0];
    assert_eq!(
        (param["name"].as_str(), param["in"].as_str(), param["required"].as_bool()),
        (Some("id"), Some("path"), Some(true))
    );
    assert_eq!(param["schema"]["type"], "integer");
    // The list answers an array of todos.
    let list = &doc["paths"]["/todos"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(list["items"]["$ref"], "#/components/schemas/Todo", "{list:#}");

    // hello: its doc comment as the summary, a text answer, query parameters.
    let hello = &doc["paths"]["/hello/{name}"]["get"];
    assert_eq!(
        hello["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Greeting"
    );
    assert!(
        doc["paths"]["/text"]["get"]["responses"]["200"]["content"]["text/plain"].is_object(),
        "{:#}",
        doc["paths"]["/text"]
    );
    let tags: Vec<&str> = doc["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tags, ["users", "todo", "hello"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_can_move_or_be_turned_off() {
    let h = TestHost::start(&format!("[openapi]\nenabled = false\n{}", group("examples/hello"))).await;
    assert_eq!(h.get("/openapi.json").await.status, 404);
    h.stop().await;
    let h = TestHost::start(&format!(
        "[openapi]\npath = \"/api/spec.json\"\ntitle = \"Hello API\"\n{}",
        group("examples/hello")
    ))
    .await;
    let doc = h.get("/api/spec.json").await.json();
    assert_eq!(doc["info"]["title"], "Hello API");
    assert!(doc["paths"]["/hello/{name}"].is_object());
    h.stop().await;
}

#[test]
fn berth_openapi_prints_the_document_of_one_group_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[build]\nprofile = \"dev\"\nquiet = true\n{}{}",
            dir.path().join("data").display(),
            group("examples/hello"),
            group("plugins/users")
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("openapi")
            .arg("-c")
            .arg(&config)
            .args(args)
            .env("CARGO_TARGET_DIR", workspace().join("target"))
            .output()
            .expect("run berth openapi")
    };
    let out = run(&["--group", "hello"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert!(doc["paths"]["/hello/{name}"]["get"].is_object());
    assert!(doc["paths"]["/users"].is_null(), "only the group asked for");
    validate(&doc).unwrap_or_else(|e| panic!("{e}"));

    let out = run(&["--group", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no group `nope`") && err.contains("hello"), "{err}");
}
