//! The event triggers: `#[berth::timer(...)]`, `#[berth::queue(...)]` and `#[berth::blob(...)]`.
//! Each takes `key = value` options; `timer` and `queue` may start with a string (the cron
//! schedule, the queue binding).

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, ToTokens};
use syn::{parse::ParseStream, parse::Parser, LitStr, Token};

use crate::function::{expand_function, parse_fn};
use crate::options::{Kind, Options, Spec, Value, TIMEOUT};

/// A trigger's arguments: the optional leading string, then the options.
struct TriggerArgs {
    leading: Option<LitStr>,
    options: Options,
}

/// Parses `attr`. `leading` names what a leading string is (the cron schedule, the queue), for a
/// trigger that takes one.
fn parse_args(attr: TokenStream2, leading: Option<&str>, specs: &[Spec]) -> syn::Result<TriggerArgs> {
    let parser = |input: ParseStream| {
        let mut args = TriggerArgs { leading: None, options: Options::empty() };
        if input.peek(LitStr) {
            let Some(what) = leading else {
                // blob: the bucket is named with a key.
                let lit: LitStr = input.parse()?;
                return Err(syn::Error::new(
                    lit.span(),
                    format!("name the bucket with a key: `bucket = {}`", quote!(#lit)),
                ));
            };
            args.leading = Some(input.parse()?);
            if !input.is_empty() {
                if !input.peek(Token![,]) {
                    return Err(input.error(format!("expected `,` after {what}")));
                }
                input.parse::<Token![,]>()?;
            }
        }
        args.options = Options::parse(input, specs)?;
        Ok(args)
    };
    parser.parse2(attr)
}

const TIMER: &[Spec] = &[
    Spec { key: "every", kind: Kind::Str, example: "\"30s\"" },
    Spec { key: "timezone", kind: Kind::Str, example: "\"Europe/Paris\"" },
    Spec { key: "overlap", kind: Kind::Bool, example: "true" },
    TIMEOUT,
];

/// Expands `#[berth::timer(...)]`.
pub(crate) fn timer(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr, Some("the cron schedule"), TIMER)?;
    let func = parse_fn(item, "timer")?;
    let opts = &args.options;
    let schedule = match (&args.leading, opts.string("every")) {
        (Some(cron), None) => {
            let fields = cron.value().split_whitespace().count();
            if !(6..=7).contains(&fields) {
                return Err(syn::Error::new(
                    cron.span(),
                    format!(
                        "a cron schedule has 6 or 7 fields, seconds first (`0 */5 * * * *`); this one has {fields}"
                    ),
                ));
            }
            cron.value()
        }
        (None, Some(every)) => {
            humantime::parse_duration(&every.value()).map_err(|e| {
                syn::Error::new(every.span(), format!("bad interval `{}`: {e} (try \"30s\" or \"5m\")", every.value()))
            })?;
            format!("@every {}", every.value())
        }
        (Some(_), Some(_)) => {
            let every = opts.get("every").map(|p| &p.tokens);
            return Err(syn::Error::new_spanned(
                every,
                "give either a cron schedule or `every = ...`, not both: remove one of them",
            ));
        }
        (None, None) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "a timer needs a schedule: a cron string, seconds first (`#[berth::timer(\"0 */5 * * * *\")]`), \
                 or an interval (`#[berth::timer(every = \"30s\")]`)",
            ))
        }
    };
    let timezone = opts.string("timezone").map(|t| t.value()).unwrap_or_default();
    let overlap = opts.boolean("overlap");
    let trigger = quote!(::berth::__private::TriggerDef::Timer { schedule: #schedule, timezone: #timezone, allow_overlap: #overlap });
    expand_function(trigger, opts.timeout_ms()?, 0, false, func)
}

const QUEUE: &[Spec] = &[
    Spec { key: "stream", kind: Kind::Str, example: "\"orders\"" },
    Spec { key: "queue", kind: Kind::Str, example: "\"orders\"" },
    Spec { key: "concurrency", kind: Kind::Int, example: "4" },
    Spec { key: "max_attempts", kind: Kind::Int, example: "5" },
    TIMEOUT,
];

/// Expands `#[berth::queue(...)]`.
pub(crate) fn queue(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr, Some("the queue name"), QUEUE)?;
    let func = parse_fn(item, "queue")?;
    let opts = &args.options;
    // The binding is named by the leading string, `stream = ...` or `queue = ...`: exactly once.
    let mut names: Vec<(&LitStr, TokenStream2)> = Vec::new();
    if let Some(leading) = &args.leading {
        names.push((leading, leading.to_token_stream()));
    }
    for pair in opts.pairs() {
        if let (true, Value::Str(name)) = (pair.key == "stream" || pair.key == "queue", &pair.value) {
            names.push((name, pair.tokens.clone()));
        }
    }
    let name = match names.as_slice() {
        [(name, _)] => *name,
        [] => {
            return Err(syn::Error::new(
                Span::call_site(),
                "a queue trigger needs its queue binding: `#[berth::queue(stream = \"orders\")]`",
            ))
        }
        [_, (_, again), ..] => {
            return Err(syn::Error::new_spanned(
                again,
                "the queue binding is already named: name it once, with `stream = \"orders\"`",
            ))
        }
    };
    let (concurrency, max_attempts) = (opts.int("concurrency")?, opts.int("max_attempts")?);
    let trigger = quote!(::berth::__private::TriggerDef::Queue { queue: #name, concurrency: #concurrency, max_attempts: #max_attempts });
    expand_function(trigger, opts.timeout_ms()?, 0, false, func)
}

const BLOB: &[Spec] = &[
    Spec { key: "bucket", kind: Kind::Str, example: "\"uploads\"" },
    Spec { key: "events", kind: Kind::StrList, example: "[\"created\", \"deleted\"]" },
    TIMEOUT,
];

/// Expands `#[berth::blob(...)]`.
pub(crate) fn blob(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args = parse_args(attr, None, BLOB)?;
    let func = parse_fn(item, "blob")?;
    let opts = &args.options;
    let bucket = opts.string("bucket").cloned().ok_or_else(|| {
        syn::Error::new(Span::call_site(), "a blob trigger needs its bucket: `#[berth::blob(bucket = \"uploads\")]`")
    })?;
    let mut events = opts.list("events");
    for e in &events {
        if !matches!(e.value().as_str(), "created" | "deleted") {
            return Err(syn::Error::new(
                e.span(),
                format!("unknown blob event \"{}\"; blob events are \"created\" and \"deleted\"", e.value()),
            ));
        }
    }
    if events.is_empty() {
        events = vec![LitStr::new("created", Span::call_site()), LitStr::new("deleted", Span::call_site())];
    }
    let trigger = quote!(::berth::__private::TriggerDef::Blob { bucket: #bucket, events: &[#(#events),*] });
    expand_function(trigger, opts.timeout_ms()?, 0, false, func)
}
