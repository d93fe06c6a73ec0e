//! `berth::group!(f1, f2)` or
//! `berth::group!{ name: "x", functions: [f1, f2], init: setup, stop: teardown, services: [...], exports: [...] }`

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    ext::IdentExt,
    parse::{Parse, ParseStream},
    punctuated::Punctuated,
    token::Bracket,
    Ident, LitStr, Token,
};

use crate::options::{error_until_comma, one_of, parse_spanned, unknown};

const KEYS: &[&str] = &["name", "version", "functions", "init", "stop", "services", "exports", "middleware"];

struct GroupArgs {
    /// `group!{ key: value, .. }` rather than `group!(f1, f2)`.
    keyed: bool,
    name: Option<LitStr>,
    version: Option<LitStr>,
    functions: Vec<Ident>,
    init: Option<syn::Path>,
    stop: Option<syn::Path>,
    services: Vec<syn::Expr>,
    exports: Vec<syn::Expr>,
    middleware: Vec<syn::Expr>,
}

impl Parse for GroupArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = GroupArgs {
            keyed: false,
            name: None,
            version: None,
            functions: Vec::new(),
            init: None,
            stop: None,
            services: Vec::new(),
            exports: Vec::new(),
            middleware: Vec::new(),
        };
        // `name: ..` (or the slip `name = ..`); `a::b` is a path in the plain list.
        args.keyed = input.peek(Ident::peek_any)
            && ((input.peek2(Token![:]) && !input.peek2(Token![::])) || input.peek2(Token![=]));
        if !args.keyed {
            args.functions = parse_functions(input)?;
            return Ok(args);
        }
        let mut seen: Vec<Ident> = Vec::new();
        while !input.is_empty() {
            if !input.peek(Ident::peek_any) {
                return Err(error_until_comma(input, &format!("expected `key: value`, where key is {}", one_of(KEYS))));
            }
            let key = Ident::parse_any(input)?;
            let key_str = key.to_string();
            if !KEYS.contains(&key_str.as_str()) {
                return Err(unknown(&key, "key", KEYS));
            }
            if !input.peek(Token![:]) || input.peek(Token![::]) {
                return Err(if input.is_empty() || input.peek(Token![,]) {
                    syn::Error::new(key.span(), format!("`{key}` needs a value: `{key}: {}`", example(&key_str)))
                } else {
                    input.error(format!("expected `:` after `{key}`: `{key}: {}`", example(&key_str)))
                });
            }
            let colon: Token![:] = input.parse()?;
            let ((), value) = parse_spanned(input, |input| parse_value(input, &key, &mut args))?;
            if seen.contains(&key) {
                return Err(syn::Error::new_spanned(
                    quote!(#key #colon #value),
                    format!("`{key}` is given twice; keep only one `{key}: ...`"),
                ));
            }
            seen.push(key);
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between the entries of `berth::group!`"));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// An example value of `key`, for messages.
fn example(key: &str) -> &'static str {
    match key {
        "name" => "\"my-group\"",
        "version" => "\"1.0.0\"",
        "functions" => "[my_fn, other_fn]",
        "init" => "setup",
        "stop" => "teardown",
        "services" => "[sql(\"db\"), kv(\"cache\")]",
        "middleware" => "[timing, require_tenant]",
        _ => "[my_api::export(\"name\", MyImpl)]",
    }
}

/// Parses the value of `key` into `args`.
fn parse_value(input: ParseStream, key: &Ident, args: &mut GroupArgs) -> syn::Result<()> {
    let key_str = key.to_string();
    let wrong = |input: ParseStream, what: &str| {
        let message = format!("`{key}` takes {what}: `{key}: {}`", example(&key_str));
        if input.is_empty() || input.peek(Token![,]) {
            syn::Error::new(key.span(), message)
        } else {
            error_until_comma(input, &message)
        }
    };
    match key_str.as_str() {
        "name" | "version" => {
            if !input.peek(LitStr) {
                return Err(wrong(input, "a string"));
            }
            let value = Some(input.parse()?);
            if key_str == "name" {
                args.name = value;
            } else {
                args.version = value;
            }
        }
        "init" | "stop" => {
            if !(input.peek(Ident::peek_any) || input.peek(Token![::])) {
                return Err(wrong(input, "the path of an async fn"));
            }
            let value = Some(input.parse()?);
            if key_str == "init" {
                args.init = value;
            } else {
                args.stop = value;
            }
        }
        "functions" => {
            if !input.peek(Bracket) {
                return Err(wrong(input, "a list of functions"));
            }
            let content;
            syn::bracketed!(content in input);
            args.functions = parse_functions(&content)?;
        }
        _ => {
            if !input.peek(Bracket) {
                return Err(wrong(input, "a list"));
            }
            let content;
            syn::bracketed!(content in input);
            let list: Vec<syn::Expr> =
                Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?.into_iter().collect();
            match key_str.as_str() {
                "services" => args.services = list,
                "middleware" => args.middleware = list,
                _ => args.exports = list,
            }
        }
    }
    Ok(())
}

/// `f1, f2`: the names of the group's functions (a trailing comma is fine).
fn parse_functions(input: ParseStream) -> syn::Result<Vec<Ident>> {
    let mut functions = Vec::new();
    while !input.is_empty() {
        if !input.peek(Ident) {
            return Err(error_until_comma(
                input,
                "expected the name of a function marked `#[berth::http]`, `#[berth::timer]`, `#[berth::queue]` or `#[berth::blob]`",
            ));
        }
        // A path (`handlers::a`) is parsed whole, to be refused whole.
        let ((function, path), tokens) = parse_spanned(input, |input| {
            let mut segments = vec![input.parse::<Ident>()?];
            while input.peek(Token![::]) && input.peek3(Ident::peek_any) {
                input.parse::<Token![::]>()?;
                segments.push(Ident::parse_any(input)?);
            }
            let function = segments.remove(segments.len() - 1);
            Ok((function, segments))
        })?;
        if !path.is_empty() {
            let module = path.iter().map(Ident::to_string).collect::<Vec<_>>().join("::");
            return Err(syn::Error::new_spanned(
                tokens,
                format!(
                    "name the function, not a path: `berth::group!` needs `{function}` and its definition in \
                     scope, e.g. after `use {module}::*;`"
                ),
            ));
        }
        functions.push(function);
        if input.is_empty() {
            break;
        }
        if !input.peek(Token![,]) {
            return Err(input.error("expected `,` between function names"));
        }
        input.parse::<Token![,]>()?;
    }
    Ok(functions)
}

/// Expands `berth::group!(...)`.
pub(crate) fn group(input: TokenStream2) -> syn::Result<TokenStream2> {
    let args: GroupArgs = syn::parse2(input)?;
    if args.functions.is_empty() {
        let message = if args.keyed {
            "a group needs at least one function: `functions: [my_fn]`"
        } else {
            "a group needs at least one function: `berth::group!(my_fn)`"
        };
        return Err(syn::Error::new(Span::call_site(), message));
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
    let middleware = &args.middleware;
    Ok(quote! {
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
                middleware: ::std::vec![#(::berth::middleware::Middleware::new(#middleware)),*].into(),
            }
        }
        ::berth::__export_plugin!(berth_group);
    })
}
