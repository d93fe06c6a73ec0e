//! `berth client --lang ts`: the typed TypeScript client generated from a running host's OpenAPI
//! document compiles with `tsc --strict` (npm `typescript`) and calls that host: typed answers,
//! typed errors with the request id and the failing fields, and type errors for wrong calls.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::openapi::groups;
use crate::support::{group, workspace, TestHost};

fn berth(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .output()
        .expect("run berth")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `tsc --strict` over `dir`'s TypeScript files (ES2022 modules, the DOM's fetch types).
fn compile(dir: &Path) -> Output {
    std::fs::write(
        dir.join("tsconfig.json"),
        r#"{ "compilerOptions": { "strict": true, "noUnusedLocals": true, "noImplicitReturns": true,
             "noFallthroughCasesInSwitch": true, "target": "ES2022", "module": "ES2022",
             "moduleResolution": "Bundler", "lib": ["ES2022", "DOM"], "outDir": "out", "skipLibCheck": false },
             "include": ["*.ts"] }"#,
    )
    .unwrap();
    Command::new("node").arg(crate::peers::tsc()).arg("-p").arg(dir).output().expect("run tsc")
}

/// What the program below prints: each call's result, or the error's fields.
const PROGRAM: &str = r#"
import { BerthError, createClient, type NewTodo, type Todo } from "./api.js";

const api = createClient({ baseUrl: BASE_URL, headers: () => ({ "x-client": "ts-test" }) });
const out: Record<string, unknown> = {};

async function failure(call: () => Promise<unknown>): Promise<unknown> {
  try {
    await call();
    return "no error";
  } catch (e) {
    if (!(e instanceof BerthError)) return `not a BerthError: ${String(e)}`;
    return { status: e.status, code: e.code, message: e.message, requestId: e.requestId ?? null, fields: e.fields, operation: e.operation };
  }
}

const draft: NewTodo = { title: "typed from TypeScript" };
const created: Todo = await api.todo.create(draft);
out.created = created;
out.read = await api.todo.read(created.id);
out.updated = (await api.todo.update(created.id, { done: true })).done;
out.titles = (await api.todo.list()).map((t) => t.title);
out.greeting = (await api.hello.hello("Zoë & co/1")).message;
out.divided = await api.hello.divide({ a: 7, b: 2 });
out.text = await api.hello.text();
out.invalid = await failure(() => api.todo.create({ title: "   " }));
out.missing = await failure(() => api.todo.read(987654321));
out.badRequest = await failure(() => api.hello.divide({ a: 1, b: 0 }));
await api.todo.delete(created.id);
out.afterDelete = (await api.todo.list()).length;
out.unreachable = await failure(() => createClient({ baseUrl: "http://127.0.0.1:9" }).hello.text());

// Wrong calls do not compile (tsc fails if any of these is accepted):
// @ts-expect-error a title is a string
void (() => api.todo.create({ title: 5 }));
// @ts-expect-error read takes the todo's id
void (() => api.todo.read());
// @ts-expect-error a Todo has no `name`
void (async () => (await api.todo.read(1)).name);
// @ts-expect-error divide's query needs `b`
void (() => api.hello.divide({ a: 1 }));

console.log(JSON.stringify(out));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_compiles_strictly_and_calls_the_host_with_typed_answers_and_errors() {
    let h = TestHost::start(&groups()).await;
    let dir = tempfile::tempdir().unwrap();
    let doc = h.get("/openapi.json").await.body;
    std::fs::write(dir.path().join("openapi.json"), &doc).unwrap();
    let base = format!("http://{}", h.addr);
    let program = PROGRAM.replace("BASE_URL", &Value::String(base).to_string());
    let path = dir.path().to_path_buf();
    let (generated, compiled, run) = tokio::task::spawn_blocking(move || {
        let generated = berth(&["client", "--lang", "ts", "--from", "openapi.json", "--out", "api.ts"], &path);
        std::fs::write(path.join("main.ts"), program).unwrap();
        let compiled = compile(&path);
        // The compiled files are ES modules.
        std::fs::write(path.join("out/package.json"), r#"{ "type": "module" }"#).ok();
        let run = Command::new("node").arg(path.join("out/main.js")).output().expect("run node");
        (generated, compiled, run)
    })
    .await
    .unwrap();
    assert!(generated.status.success(), "berth client: {}", text(&generated));
    assert!(text(&generated).contains("wrote api.ts (15 functions)"), "{}", text(&generated));
    assert!(compiled.status.success(), "tsc --strict refused the client:\n{}", text(&compiled));
    assert!(run.status.success(), "the program failed:\n{}", text(&run));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&run)));

    let created = &out["created"];
    assert_eq!(created["title"], "typed from TypeScript");
    assert!(created["id"].is_i64(), "{out:#}");
    assert_eq!(out["read"], *created);
    assert_eq!(out["updated"], true);
    assert!(out["titles"].as_array().unwrap().contains(&"typed from TypeScript".into()), "{out:#}");
    assert_eq!(out["greeting"], "Hello, Zoë & co/1!", "the path parameter is one encoded segment");
    assert_eq!(out["divided"], serde_json::json!({ "quotient": 3, "remainder": 1 }));
    assert!(out["text"].as_str().is_some_and(|t| !t.is_empty()), "{out:#}");

    let invalid = &out["invalid"];
    assert_eq!((invalid["status"].as_u64(), invalid["code"].as_str()), (Some(422), Some("validation")), "{out:#}");
    assert_eq!(invalid["fields"][0]["path"], "title", "{out:#}");
    assert!(invalid["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{out:#}");
    assert_eq!(invalid["operation"], "todo.create");
    assert_eq!(
        (out["missing"]["status"].as_u64(), out["missing"]["code"].as_str()),
        (Some(404), Some("not_found")),
        "{out:#}"
    );
    assert_eq!(out["badRequest"]["status"], 400, "{out:#}");
    assert!(out["badRequest"]["message"].as_str().unwrap().contains("divide by zero"), "{out:#}");
    assert_eq!(out["afterDelete"], 0);
    let unreachable = &out["unreachable"];
    assert_eq!((unreachable["status"].as_u64(), unreachable["code"].as_str()), (Some(0), Some("network")), "{out:#}");
    assert!(unreachable["message"].as_str().unwrap().contains("hello.text"), "{out:#}");
    h.stop().await;
}

#[test]
fn berth_client_writes_from_the_config_checks_staleness_and_refuses_a_foreign_document() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("berth.toml"),
        format!(
            "data_dir = \"{}\"\n[build]\nprofile = \"dev\"\nquiet = true\n{}",
            dir.path().join("data").display(),
            group("examples/hello")
        ),
    )
    .unwrap();
    let out = berth(&["client", "--lang", "ts", "--out", "web/src/api.ts"], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let client = std::fs::read_to_string(dir.path().join("web/src/api.ts")).unwrap();
    assert!(client.contains("hello(name: string, options?: CallOptions): Promise<Greeting>;"), "{client}");
    assert!(client.contains("export interface Greeting {"), "{client}");

    let check = |dir: &Path| berth(&["client", "--lang", "ts", "--out", "web/src/api.ts", "--check"], dir);
    assert!(check(dir.path()).status.success(), "{}", text(&check(dir.path())));
    std::fs::write(dir.path().join("web/src/api.ts"), client.replace("Greeting", "Greet")).unwrap();
    let stale = check(dir.path());
    assert!(!stale.status.success());
    assert!(text(&stale).contains("is stale: run `berth client --lang ts --out web/src/api.ts`"), "{}", text(&stale));

    std::fs::write(dir.path().join("swagger.json"), r#"{ "swagger": "2.0", "paths": {} }"#).unwrap();
    let foreign = berth(&["client", "--from", "swagger.json"], dir.path());
    assert!(!foreign.status.success());
    assert!(text(&foreign).contains("not OpenAPI 3.x"), "{}", text(&foreign));
}
