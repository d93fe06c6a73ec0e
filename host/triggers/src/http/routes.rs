//! The routing table: which function serves which method and path. Immutable; a new table is
//! built (and checked for conflicts) whenever the set of groups changes, then swapped in whole.

use std::sync::Arc;

use http::Method;

use berth_core::loader::TriggerSpec;
use berth_core::FunctionEntry;

/// Paths the host itself answers on the HTTP listener (and everything under `/invoke/`).
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteConflict {
    #[error("route `{method} {route}` of group `{group}` is already served by group `{other}`")]
    Taken { method: Method, route: String, group: String, other: String },
    #[error("route `{route}` of group `{group}` conflicts with route `{other_route}` of group `{other}` ({detail}); rename one of the parameters or segments")]
    Shape { route: String, group: String, other_route: String, other: String, detail: String },
    #[error("route `{route}` of group `{group}` is reserved by the host (health and metrics endpoints)")]
    Reserved { route: String, group: String },
    #[error("route `{route}` of group `{group}` is not a valid route: {detail}")]
    Invalid { route: String, group: String, detail: String },
}

/// What a route leads to: the host's function entries (or, in the routing benchmarks, any value
/// that names its group).
pub trait RouteTarget: Clone {
    /// The group the route belongs to (conflicts name it; a group's routes are replaced whole).
    fn group_name(&self) -> &str;
}

impl RouteTarget for Arc<FunctionEntry> {
    fn group_name(&self) -> &str {
        &self.group.name
    }
}

/// One route and the function behind it.
#[derive(Clone)]
pub struct Route<T = Arc<FunctionEntry>> {
    pub method: Method,
    pub pattern: String,
    pub entry: T,
}

impl Route {
    /// The HTTP routes of `functions`, in order.
    pub fn of(functions: &[Arc<FunctionEntry>]) -> Vec<Route> {
        functions
            .iter()
            .flat_map(|entry| {
                entry.triggers.iter().filter_map(move |t| match t {
                    TriggerSpec::Http { method, route } => {
                        Some(Route { method: method.clone(), pattern: route.clone(), entry: entry.clone() })
                    }
                    _ => None,
                })
            })
            .collect()
    }
}

#[derive(Clone)]
struct MethodMap<T>(Vec<(Method, T)>);

/// The outcome of looking a request up.
pub enum Lookup<'a, 'p, T = Arc<FunctionEntry>> {
    /// Route parameters as they appear in the path (still percent-encoded).
    Found {
        entry: &'a T,
        params: matchit::Params<'a, 'p>,
    },
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// An immutable routing table.
#[derive(Clone)]
pub struct RouteTable<T = Arc<FunctionEntry>> {
    router: matchit::Router<MethodMap<T>>,
    /// Every route in insertion order, for rebuilding.
    routes: Vec<Route<T>>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        RouteTable { router: matchit::Router::new(), routes: Vec::new() }
    }
}

impl<T: RouteTarget> RouteTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every route, in the order groups were added.
    pub fn routes(&self) -> &[Route<T>] {
        &self.routes
    }

    /// A new table with `group`'s routes replaced by `routes` (pass none to remove the group).
    pub fn with_group(&self, group: &str, routes: Vec<Route<T>>) -> Result<RouteTable<T>, RouteConflict> {
        let kept = self.routes.iter().filter(|r| r.entry.group_name() != group).cloned();
        Self::build(kept.chain(routes).collect())
    }

    fn build(routes: Vec<Route<T>>) -> Result<RouteTable<T>, RouteConflict> {
        let mut router = matchit::Router::new();
        // Patterns in first-seen order, with their methods.
        let mut patterns: Vec<(String, MethodMap<T>)> = Vec::new();
        for r in &routes {
            let group = r.entry.group_name().to_owned();
            if RESERVED_PATHS.contains(&r.pattern.as_str())
                || r.pattern == "/invoke"
                || r.pattern.starts_with("/invoke/")
            {
                return Err(RouteConflict::Reserved { route: r.pattern.clone(), group });
            }
            match patterns.iter_mut().find(|(p, _)| *p == r.pattern) {
                Some((_, methods)) => {
                    if let Some((_, other)) = methods.0.iter().find(|(m, _)| *m == r.method) {
                        return Err(RouteConflict::Taken {
                            method: r.method.clone(),
                            route: r.pattern.clone(),
                            group,
                            other: other.group_name().to_owned(),
                        });
                    }
                    methods.0.push((r.method.clone(), r.entry.clone()));
                }
                None => patterns.push((r.pattern.clone(), MethodMap(vec![(r.method.clone(), r.entry.clone())]))),
            }
        }
        for (pattern, methods) in patterns {
            let group = methods.0[0].1.group_name().to_owned();
            if let Err(e) = router.insert(pattern.clone(), methods) {
                let detail = e.to_string();
                return Err(match &e {
                    matchit::InsertError::Conflict { with } => {
                        let other = routes
                            .iter()
                            .find(|r| r.pattern == *with)
                            .map(|r| r.entry.group_name().to_owned())
                            .unwrap_or_default();
                        RouteConflict::Shape { route: pattern, group, other_route: with.clone(), other, detail }
                    }
                    _ => RouteConflict::Invalid { route: pattern, group, detail },
                });
            }
        }
        Ok(RouteTable { router, routes })
    }

    /// Finds the function for `method` and `path`, with its route parameters.
    pub fn lookup<'p>(&self, method: &Method, path: &'p str) -> Lookup<'_, 'p, T> {
        let Ok(matched) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        match matched.value.0.iter().find(|(m, _)| m == method) {
            Some((_, entry)) => Lookup::Found { entry, params: matched.params },
            None => {
                let allow = matched.value.0.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
                Lookup::MethodNotAllowed { allow }
            }
        }
    }
}
