//! The routing table at scale: one lookup, and one rebuild (what every deploy or swap of a group
//! does), with 10, 1,000 and 10,000 routes.
//!
//! Routes come in groups of ten, shaped like a REST API: a collection, an item, a nested item, a
//! rest parameter and a parameter mid-path, each with two methods (`/g7/items/{id}` GET and PUT,
//! ...). Lookups go to the last group added:
//!
//! - `routing/static`: `GET /g<last>/items`;
//! - `routing/params`: `GET /g<last>/items/42/notes/7` (two parameters);
//! - `routing/rest`: `GET /g<last>/files/a/b/c.txt` (a rest parameter);
//! - `routing/miss`: `GET /nope/items` (no route: a 404);
//! - `routing/rebuild`: replacing one group's ten routes (the table is immutable and rebuilt).
//!
//! The table is `berth_triggers::http::routes::RouteTable`, the one the HTTP trigger serves from,
//! with a target that only names its group (a real entry is an `Arc` too).
//!
//! `cargo bench -p berth-host --bench routing`

use std::hint::black_box;
use std::sync::Arc;

use berth_triggers::http::routes::{Lookup, Route, RouteTable, RouteTarget};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;

#[derive(Clone)]
struct Target(Arc<str>);

impl RouteTarget for Target {
    fn group_name(&self) -> &str {
        &self.0
    }
}

/// The ten routes of group `g`.
fn group_routes(g: usize) -> Vec<Route<Target>> {
    let name: Arc<str> = format!("g{g}").into();
    let shapes = [
        ("/items", Method::POST),
        ("/items/{id}", Method::PUT),
        ("/items/{id}/notes/{note}", Method::DELETE),
        ("/files/{*path}", Method::PUT),
        ("/users/{user}/profile", Method::PATCH),
    ];
    shapes
        .iter()
        .flat_map(|(path, other)| {
            let name = name.clone();
            [Method::GET, other.clone()].into_iter().map(move |method| Route {
                method,
                pattern: format!("/g{g}{path}"),
                entry: Target(name.clone()),
            })
        })
        .collect()
}

fn table(routes: usize) -> RouteTable<Target> {
    let all = (0..routes / 10).flat_map(group_routes).collect();
    RouteTable::default().with_group("", all).expect("the benchmark routes do not conflict")
}

fn found(table: &RouteTable<Target>, path: &str) -> bool {
    matches!(table.lookup(&Method::GET, path), Lookup::Found { .. })
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    for routes in [10, 1_000, 10_000] {
        let t = table(routes);
        let last = routes / 10 - 1;
        let paths = [
            ("static", format!("/g{last}/items"), true),
            ("params", format!("/g{last}/items/42/notes/7"), true),
            ("rest", format!("/g{last}/files/a/b/c.txt"), true),
            ("miss", "/nope/items".to_owned(), false),
        ];
        for (name, path, expected) in &paths {
            assert_eq!(found(&t, path), *expected, "{name} {path}");
            group.bench_with_input(BenchmarkId::new(*name, routes), path, |b, path| {
                b.iter(|| black_box(found(&t, black_box(path))))
            });
        }
        let replacement = group_routes(last);
        group.bench_with_input(BenchmarkId::new("rebuild", routes), &replacement, |b, r| {
            b.iter(|| black_box(t.with_group(&format!("g{last}"), r.clone()).expect("rebuilt")))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
