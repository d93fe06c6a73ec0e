//! Which platform this process runs on: `--platform` / `BERTH_PLATFORM` when given, else the
//! first platform whose environment variables are set, else standalone.

use std::fmt;
use std::net::SocketAddr;

/// A platform Berth can be started on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Berth's own server (`berth up` on a laptop or a server).
    Standalone,
    /// AWS Lambda custom runtime (`provided.al2023`): the Runtime API loop.
    Lambda,
    /// Alibaba Cloud Function Compute 3.0 custom runtime: HTTP on `$FC_CUSTOM_LISTEN_PORT`.
    Fc,
    /// Tencent SCF event function (custom runtime): the SCF runtime API loop.
    Scf,
    /// Tencent SCF web function: HTTP on 0.0.0.0:9000.
    ScfWeb,
    /// The kubeless runtime contract: HTTP on `$FUNC_PORT`.
    Kubeless,
    /// Knative Serving (and Eventing): HTTP on `$PORT`, CloudEvents.
    Knative,
}

impl Platform {
    /// Every platform, by its name.
    pub const ALL: [Platform; 7] = [
        Platform::Standalone,
        Platform::Lambda,
        Platform::Fc,
        Platform::Scf,
        Platform::ScfWeb,
        Platform::Kubeless,
        Platform::Knative,
    ];

    /// The name `--platform` and `BERTH_PLATFORM` take, and logs and metrics show.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Standalone => "standalone",
            Platform::Lambda => "lambda",
            Platform::Fc => "fc",
            Platform::Scf => "scf",
            Platform::ScfWeb => "scf-web",
            Platform::Kubeless => "kubeless",
            Platform::Knative => "knative",
        }
    }

    /// Whether the platform calls a runtime API in a loop (no listener of Berth's own).
    pub fn polls(self) -> bool {
        matches!(self, Platform::Lambda | Platform::Scf)
    }

    /// Whether instances are frozen between invocations, so in-process timers and queue
    /// consumers cannot run (the platform delivers those events instead).
    pub fn freezes(self) -> bool {
        matches!(self, Platform::Lambda | Platform::Fc | Platform::Scf | Platform::ScfWeb)
    }

    /// The address the platform sends requests to, from its environment (`None`: Berth's own
    /// `server.listen`, or no listener at all).
    pub fn listen(self, env: &dyn Fn(&str) -> Option<String>) -> Option<SocketAddr> {
        let port = |vars: &[&str], default: u16| {
            vars.iter().find_map(|v| env(v)?.trim().parse::<u16>().ok()).unwrap_or(default)
        };
        let any = |port: u16| Some(SocketAddr::from(([0, 0, 0, 0], port)));
        match self {
            Platform::Fc => any(port(&["FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"], 9000)),
            Platform::ScfWeb => any(9000),
            Platform::Kubeless => any(port(&["FUNC_PORT"], 8080)),
            Platform::Knative => any(port(&["PORT"], 8080)),
            Platform::Standalone | Platform::Lambda | Platform::Scf => None,
        }
    }

    /// The writable directory for the embedded defaults (SQLite, key-value, blob files), when
    /// the platform's package directory is read-only.
    pub fn data_dir(self) -> Option<&'static str> {
        match self {
            Platform::Lambda | Platform::Fc | Platform::Scf | Platform::ScfWeb | Platform::Knative => {
                Some("/tmp/berth")
            }
            Platform::Standalone | Platform::Kubeless => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Platform::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Platform::ALL.iter().map(|p| p.name()).collect();
            format!("unknown platform `{s}`; expected one of: {}", names.join(", "))
        })
    }
}

/// The platform chosen, and why (for the log line at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub platform: Platform,
    pub reason: String,
}

/// Chooses the platform: `forced` (from `--platform` / `BERTH_PLATFORM`) when given, else from
/// the environment, else from the executable's name (`scf_bootstrap` is an SCF web function),
/// else standalone.
pub fn detect(
    forced: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    exe_name: Option<&str>,
) -> Result<Detected, String> {
    if let Some(name) = forced.map(str::trim).filter(|n| !n.is_empty() && *n != "auto") {
        let platform = name.parse()?;
        return Ok(Detected { platform, reason: format!("--platform / BERTH_PLATFORM is `{name}`") });
    }
    let set = |var: &str| env(var).is_some_and(|v| !v.is_empty());
    let found = |platform, var: &str| Ok(Detected { platform, reason: format!("{var} is set") });
    if set("AWS_LAMBDA_RUNTIME_API") {
        return found(Platform::Lambda, "AWS_LAMBDA_RUNTIME_API");
    }
    if set("SCF_RUNTIME_API") {
        return found(Platform::Scf, "SCF_RUNTIME_API");
    }
    for var in ["FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT", "FC_FUNCTION_NAME", "FC_FUNC_CODE_PATH"] {
        if set(var) {
            return found(Platform::Fc, var);
        }
    }
    // A web function gets SCF's function variables but no runtime API.
    for var in ["SCF_FUNCTIONNAME", "SCF_NAMESPACE"] {
        if set(var) {
            return Ok(Detected {
                platform: Platform::ScfWeb,
                reason: format!("{var} is set without SCF_RUNTIME_API"),
            });
        }
    }
    if exe_name == Some("scf_bootstrap") {
        return Ok(Detected { platform: Platform::ScfWeb, reason: "started as scf_bootstrap".into() });
    }
    for var in ["FUNC_HANDLER", "FUNC_PORT"] {
        if set(var) {
            return found(Platform::Kubeless, var);
        }
    }
    if set("K_SERVICE") {
        return found(Platform::Knative, "K_SERVICE");
    }
    Ok(Detected { platform: Platform::Standalone, reason: "no platform's environment variables are set".into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn each_platform_is_told_by_its_variables() {
        type Vars = &'static [(&'static str, &'static str)];
        let cases: &[(Vars, Platform, &str)] = &[
            (&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")], Platform::Lambda, "AWS_LAMBDA_RUNTIME_API is set"),
            (&[("SCF_RUNTIME_API", "127.0.0.1"), ("SCF_FUNCTIONNAME", "f")], Platform::Scf, "SCF_RUNTIME_API is set"),
            (&[("FC_CUSTOM_LISTEN_PORT", "9000")], Platform::Fc, "FC_CUSTOM_LISTEN_PORT is set"),
            (&[("FC_FUNCTION_NAME", "f")], Platform::Fc, "FC_FUNCTION_NAME is set"),
            (&[("SCF_FUNCTIONNAME", "f")], Platform::ScfWeb, "SCF_FUNCTIONNAME is set without SCF_RUNTIME_API"),
            (&[("FUNC_HANDLER", "hello"), ("FUNC_PORT", "8080")], Platform::Kubeless, "FUNC_HANDLER is set"),
            (&[("K_SERVICE", "shop"), ("PORT", "8080")], Platform::Knative, "K_SERVICE is set"),
            (&[("PORT", "8080")], Platform::Standalone, "no platform's environment variables are set"),
        ];
        for (vars, platform, reason) in cases {
            let d = detect(None, &with(vars), Some("berth")).unwrap();
            assert_eq!((d.platform, d.reason.as_str()), (*platform, *reason), "{vars:?}");
        }
        let d = detect(None, &with(&[]), Some("scf_bootstrap")).unwrap();
        assert_eq!(d.platform, Platform::ScfWeb);
    }

    #[test]
    fn the_override_wins_and_a_wrong_name_is_refused_with_the_names() {
        let d = detect(Some("knative"), &with(&[("AWS_LAMBDA_RUNTIME_API", "x")]), None).unwrap();
        assert_eq!(d.platform, Platform::Knative);
        assert!(d.reason.contains("knative"), "{}", d.reason);
        assert_eq!(detect(Some("auto"), &with(&[("K_SERVICE", "s")]), None).unwrap().platform, Platform::Knative);
        let err = detect(Some("azure"), &with(&[]), None).unwrap_err();
        assert!(err.contains("azure") && err.contains("lambda, fc, scf, scf-web, kubeless, knative"), "{err}");
    }

    #[test]
    fn listeners_follow_the_platform_contracts() {
        let env = with(&[("FC_CUSTOM_LISTEN_PORT", "9100"), ("FUNC_PORT", "8089"), ("PORT", "8088")]);
        assert_eq!(Platform::Fc.listen(&env), Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(Platform::Kubeless.listen(&env), Some("0.0.0.0:8089".parse().unwrap()));
        assert_eq!(Platform::Knative.listen(&env), Some("0.0.0.0:8088".parse().unwrap()));
        assert_eq!(Platform::ScfWeb.listen(&env), Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(Platform::Fc.listen(&with(&[])), Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(Platform::Lambda.listen(&env), None);
    }
}
