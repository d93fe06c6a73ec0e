//! Proc macros of the berth SDK. Use them through the `berth` crate:
//! `#[berth::http(GET, "/hello/{name}")]` on an async fn, and `berth::group!(...)` once per crate.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    parse::{Parse, ParseStream},
    parse_macro_input,
    punctuated::Punctuated,
    FnArg, Ident, ItemFn, LitStr, Token,
};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// `#[http(METHOD, "/route/{param}", timeout = "2s", body_limit = "1MiB")]`
struct HttpArgs {
    method: Ident,
    route: LitStr,
    timeout_ms: u64,
    body_limit: u64,
}

impl Parse for HttpArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let method: Ident = input.parse()?;
        if !METHODS.contains(&method.to_string().as_str()) {
            return Err(syn::Error::new(
                method.span(),
                format!("unknown HTTP method `{method}`; expected one of {}", METHODS.join(", ")),
            ));
        }
        input.parse::<Token![,]>()?;
        let route: LitStr = input.parse()?;
        if !route.value().starts_with('/') {
            return Err(syn::Error::new(route.span(), "a route must start with `/`"));
        }
        let mut args = HttpArgs { method, route, timeout_ms: 0, body_limit: 0 };
        while input.parse::<Token![,]>().is_ok() {
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "timeout" => {
                    let lit: LitStr = input.parse()?;
                    let d = humantime::parse_duration(&lit.value()).map_err(|e| {
                        syn::Error::new(
                            lit.span(),
                            format!("bad timeout `{}`: {e} (try \"500ms\" or \"30s\")", lit.value()),
                        )
                    })?;
                    args.timeout_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
                }
                "body_limit" => {
                    let lit: LitStr = input.parse()?;
                    let b: bytesize::ByteSize = lit.value().parse().map_err(|e| {
                        syn::Error::new(
                            lit.span(),
                            format!("bad body_limit `{}`: {e} (try \"64KiB\" or \"6MiB\")", lit.value()),
                        )
                    })?;
                    args.body_limit = b.as_u64().max(1);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`; expected `timeout` or `body_limit`"),
                    ))
                }
            }
        }
        Ok(args)
    }
}

/// Marks an async fn as an HTTP-triggered function of this group.
///
/// Each argument is an extractor implementing `berth::FromCall` (`Request`, `Context`,
/// `Json<T>`, `Path<T>`, `Query<T>`, `Headers`, `Bytes`); the return type implements
/// `berth::IntoResponse`. The function stays callable as written.
#[proc_macro_attribute]
pub fn http(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(attr as HttpArgs);
    let func = parse_macro_input!(item as ItemFn);
    let (method, route) = (args.method.to_string(), &args.route);
    let trigger = quote!(::berth::__private::TriggerDef::Http { method: #method, route: #route });
    expand_function(trigger, args.timeout_ms, args.body_limit, func)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A value in `key = value` trigger options.
enum OptValue {
    Str(LitStr),
    Int(syn::LitInt),
    Bool(syn::LitBool),
    List(Vec<LitStr>),
}

/// Options of the event triggers: an optional leading string, then `key = value` pairs.
struct Opts {
    leading: Option<LitStr>,
    pairs: Vec<(Ident, OptValue)>,
}

impl Parse for Opts {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut opts = Opts { leading: None, pairs: Vec::new() };
        if input.peek(LitStr) {
            opts.leading = Some(input.parse()?);
            if input.parse::<Token![,]>().is_err() {
                return Ok(opts);
            }
        }
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            let value = if input.peek(LitStr) {
                OptValue::Str(input.parse()?)
            } else if input.peek(syn::LitInt) {
                OptValue::Int(input.parse()?)
            } else if input.peek(syn::LitBool) {
                OptValue::Bool(input.parse()?)
            } else if input.peek(syn::token::Bracket) {
                let content;
                syn::bracketed!(content in input);
                OptValue::List(Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?.into_iter().collect())
            } else {
                return Err(input.error("expected a string, integer, boolean or [\"list\"]"));
            };
            opts.pairs.push((key, value));
            if input.parse::<Token![,]>().is_err() {
                break;
            }
        }
        Ok(opts)
    }
}

impl Opts {
    fn check_keys(&self, allowed: &[&str]) -> syn::Result<()> {
        for (k, _) in &self.pairs {
            if !allowed.contains(&k.to_string().as_str()) {
                return Err(syn::Error::new(
                    k.span(),
                    format!("unknown option `{k}`; expected one of: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
    fn get(&self, key: &str) -> Option<&OptValue> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn string(&self, key: &str) -> syn::Result<Option<LitStr>> {
        match self.get(key) {
            None => Ok(None),
            Some(OptValue::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(syn::Error::new(Span::call_site(), format!("`{key}` takes a string"))),
        }
    }
    fn int(&self, key: &str) -> syn::Result<u32> {
        match self.get(key) {
            None => Ok(0),
            Some(OptValue::Int(i)) => i.base10_parse(),
            Some(_) => Err(syn::Error::new(Span::call_site(), format!("`{key}` takes an integer"))),
        }
    }
    fn boolean(&self, key: &str) -> syn::Result<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(OptValue::Bool(b)) => Ok(b.value),
            Some(_) => Err(syn::Error::new(Span::call_site(), format!("`{key}` takes true or false"))),
        }
    }
    fn list(&self, key: &str) -> syn::Result<Vec<LitStr>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(OptValue::List(l)) => Ok(l.clone()),
            Some(OptValue::Str(s)) => Ok(vec![s.clone()]),
            Some(_) => Err(syn::Error::new(Span::call_site(), format!("`{key}` takes a list of strings"))),
        }
    }
    fn timeout_ms(&self) -> syn::Result<u64> {
        let Some(lit) = self.string("timeout")? else { return Ok(0) };
        let d = humantime::parse_duration(&lit.value()).map_err(|e| {
            syn::Error::new(lit.span(), format!("bad timeout `{}`: {e} (try \"500ms\" or \"30s\")", lit.value()))
        })?;
        Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
    }
}

/// Runs an async fn on a schedule: `#[berth::timer("0 */5 * * * *")]` (cron with seconds),
/// `#[berth::timer(every = "30s")]`; options `timezone = "Europe/Paris"`, `overlap = true`,
/// `timeout = "1m"`. The function receives a `berth::Event` (type `berth.timer.fired`).
#[proc_macro_attribute]
pub fn timer(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = parse_macro_input!(attr as Opts);
    let func = parse_macro_input!(item as ItemFn);
    let build = || -> syn::Result<TokenStream2> {
        opts.check_keys(&["every", "timezone", "overlap", "timeout"])?;
        let schedule = match (&opts.leading, opts.string("every")?) {
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
                humantime::parse_duration(&every.value())
                    .map_err(|e| syn::Error::new(every.span(), format!("bad interval `{}`: {e}", every.value())))?;
                format!("@every {}", every.value())
            }
            _ => {
                return Err(syn::Error::new(
                    Span::call_site(),
                    "give a cron schedule (\"0 */5 * * * *\") or `every = \"30s\"`, not both",
                ))
            }
        };
        let timezone = opts.string("timezone")?.map(|t| t.value()).unwrap_or_default();
        let overlap = opts.boolean("overlap")?;
        let trigger = quote!(::berth::__private::TriggerDef::Timer { schedule: #schedule, timezone: #timezone, allow_overlap: #overlap });
        expand_function(trigger, opts.timeout_ms()?, 0, func.clone())
    };
    build().unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Consumes a queue binding of `berth.toml`: `#[berth::queue(stream = "orders")]` (or
/// `queue = "orders"`); options `concurrency = 4`, `max_attempts = 5`, `timeout = "30s"`. The
/// function receives a `berth::Event`; returning an error retries the message with backoff.
#[proc_macro_attribute]
pub fn queue(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = parse_macro_input!(attr as Opts);
    let func = parse_macro_input!(item as ItemFn);
    let build = || -> syn::Result<TokenStream2> {
        opts.check_keys(&["stream", "queue", "concurrency", "max_attempts", "timeout"])?;
        let name = match (opts.string("stream")?, opts.string("queue")?, &opts.leading) {
            (Some(n), None, None) | (None, Some(n), None) => n,
            (None, None, Some(n)) => n.clone(),
            _ => return Err(syn::Error::new(Span::call_site(), "name the queue binding once: `stream = \"orders\"`")),
        };
        let (concurrency, max_attempts) = (opts.int("concurrency")?, opts.int("max_attempts")?);
        let trigger = quote!(::berth::__private::TriggerDef::Queue { queue: #name, concurrency: #concurrency, max_attempts: #max_attempts });
        expand_function(trigger, opts.timeout_ms()?, 0, func.clone())
    };
    build().unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Receives object events of a blob bucket: `#[berth::blob(bucket = "uploads", events = ["created"])]`
/// (`created`, `deleted`; default both). The event data is shaped like an S3/OSS notification.
#[proc_macro_attribute]
pub fn blob(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = parse_macro_input!(attr as Opts);
    let func = parse_macro_input!(item as ItemFn);
    let build = || -> syn::Result<TokenStream2> {
        opts.check_keys(&["bucket", "events", "timeout"])?;
        let bucket =
            opts.string("bucket")?.ok_or_else(|| syn::Error::new(Span::call_site(), "missing `bucket = \"...\"`"))?;
        let mut events = opts.list("events")?;
        for e in &events {
            if !matches!(e.value().as_str(), "created" | "deleted") {
                return Err(syn::Error::new(e.span(), "blob events are \"created\" and \"deleted\""));
            }
        }
        if events.is_empty() {
            events = vec![LitStr::new("created", Span::call_site()), LitStr::new("deleted", Span::call_site())];
        }
        let trigger = quote!(::berth::__private::TriggerDef::Blob { bucket: #bucket, events: &[#(#events),*] });
        expand_function(trigger, opts.timeout_ms()?, 0, func.clone())
    };
    build().unwrap_or_else(syn::Error::into_compile_error).into()
}

fn expand_function(trigger: TokenStream2, timeout_ms: u64, body_limit: u64, func: ItemFn) -> syn::Result<TokenStream2> {
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(func.sig.fn_token, "a berth function must be `async fn`"));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&func.sig.generics, "a berth function cannot be generic"));
    }
    let name = &func.sig.ident;
    let def_fn = format_ident!("__berth_fn_{}", name);
    let mut extract = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in func.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat) = arg else {
            return Err(syn::Error::new_spanned(arg, "a berth function cannot take `self`"));
        };
        let ty = &pat.ty;
        let var = format_ident!("__arg{}", i);
        extract.push(quote! {
            let #var = <#ty as ::berth::FromCall>::from_call(&__ctx, &mut __req)?;
        });
        call_args.push(var);
    }
    let name_str = name.to_string();
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        pub fn #def_fn() -> ::berth::__private::FunctionDef {
            async fn __run(
                __ctx: ::berth::Context,
                mut __req: ::berth::Request,
            ) -> ::berth::Result<::berth::Response> {
                #(#extract)*
                ::berth::IntoResponse::into_response(#name(#(#call_args),*).await)
            }
            fn __handler(
                __ctx: ::berth::Context,
                __req: ::berth::Request,
            ) -> ::berth::__private::HandlerFuture {
                ::std::boxed::Box::pin(__run(__ctx, __req))
            }
            fn __call(__ctx: ::berth::Context, __req: ::berth::Request) -> ::berth::__private::CallFuture {
                ::berth::__private::call(__ctx, __req, __run)
            }
            ::berth::__private::FunctionDef {
                name: #name_str,
                triggers: ::std::vec![#trigger],
                timeout_ms: #timeout_ms,
                body_limit: #body_limit,
                handler: __handler,
                call: __call,
            }
        }
    })
}

/// `group!(f1, f2)` or `group!{ name: "x", functions: [f1, f2], init: setup, stop: teardown }`
struct GroupArgs {
    name: Option<LitStr>,
    version: Option<LitStr>,
    functions: Vec<Ident>,
    init: Option<syn::Path>,
    stop: Option<syn::Path>,
    services: Vec<syn::Expr>,
    exports: Vec<syn::Expr>,
}

impl Parse for GroupArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = GroupArgs {
            name: None,
            version: None,
            functions: Vec::new(),
            init: None,
            stop: None,
            services: Vec::new(),
            exports: Vec::new(),
        };
        let keyed = input.peek(Ident) && input.peek2(Token![:]);
        if !keyed {
            let list = Punctuated::<Ident, Token![,]>::parse_terminated(input)?;
            args.functions = list.into_iter().collect();
            return Ok(args);
        }
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            match key.to_string().as_str() {
                "name" => args.name = Some(input.parse()?),
                "version" => args.version = Some(input.parse()?),
                "init" => args.init = Some(input.parse()?),
                "stop" => args.stop = Some(input.parse()?),
                "functions" => {
                    let content;
                    syn::bracketed!(content in input);
                    let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    args.functions = list.into_iter().collect();
                }
                "services" | "exports" => {
                    let content;
                    syn::bracketed!(content in input);
                    let list: Vec<syn::Expr> =
                        Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?.into_iter().collect();
                    if key == "services" {
                        args.services = list;
                    } else {
                        args.exports = list;
                    }
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown key `{other}`; expected name, version, functions, init or stop"),
                    ))
                }
            }
            if input.parse::<Token![,]>().is_err() {
                break;
            }
        }
        Ok(args)
    }
}

/// Exports this crate as a Berth function group. Use once, at the crate root.
#[proc_macro]
pub fn group(input: TokenStream) -> TokenStream {
    let args = parse_macro_input!(input as GroupArgs);
    if args.functions.is_empty() {
        return syn::Error::new(Span::call_site(), "a group needs at least one function: `berth::group!(my_fn)`")
            .into_compile_error()
            .into();
    }
    let defs = args.functions.iter().map(|f| format_ident!("__berth_fn_{}", f));
    let name = match &args.name {
        Some(n) => quote!(#n),
        None => quote!(::std::env!("CARGO_PKG_NAME")),
    };
    let version = match &args.version {
        Some(v) => quote!(#v),
        None => quote!(::std::env!("CARGO_PKG_VERSION")),
    };
    let init = match &args.init {
        Some(p) => quote!(::std::option::Option::Some(|c| ::std::boxed::Box::pin(#p(c)))),
        None => quote!(::std::option::Option::None),
    };
    let stop = match &args.stop {
        Some(p) => quote!(::std::option::Option::Some(|c| ::std::boxed::Box::pin(#p(c)))),
        None => quote!(::std::option::Option::None),
    };
    let services = &args.services;
    let exports = &args.exports;
    quote! {
        /// This crate's function group, as the `berth` host and test harness see it.
        pub fn berth_group() -> ::berth::__private::GroupDef {
            #[allow(unused_imports)]
            use ::berth::__private::decl::*;
            ::berth::__private::GroupDef {
                name: #name,
                version: #version,
                functions: ::std::vec![#(#defs()),*],
                init: #init,
                stop: #stop,
                services: ::std::vec![#(#services),*],
                exports: ::std::vec![#(#exports),*],
            }
        }
        ::berth::__export_plugin!(berth_group);
    }
    .into()
}
