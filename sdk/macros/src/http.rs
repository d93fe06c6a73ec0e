//! `#[berth::http(METHOD, "/route/{param}", timeout = "2s", body_limit = "1MiB")]`

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::{
    parse::{Parse, ParseStream},
    Ident, LitStr, Token,
};

use crate::function::{expand_function, parse_fn};
use crate::options::{error_until_comma, one_of, Options, Spec, BODY_LIMIT, TIMEOUT};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

const OPTIONS: &[Spec] = &[TIMEOUT, BODY_LIMIT];

const USAGE: &str = "`#[berth::http(GET, \"/path\")]`";

struct HttpArgs {
    method: Ident,
    route: LitStr,
    timeout_ms: u64,
    body_limit: u64,
}

impl Parse for HttpArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("`#[berth::http]` needs a method and a route: {USAGE}"),
            ));
        }
        if input.peek(LitStr) {
            let route: LitStr = input.parse()?;
            return Err(syn::Error::new(
                route.span(),
                format!("expected the HTTP method before the route: `#[berth::http(GET, {})]`", quote!(#route)),
            ));
        }
        if !input.peek(Ident) {
            return Err(error_until_comma(input, &format!("expected an HTTP method, one of {}", one_of(METHODS))));
        }
        let method: Ident = input.parse()?;
        let name = method.to_string();
        if !METHODS.contains(&name.as_str()) {
            let upper = name.to_ascii_uppercase();
            let message = if METHODS.contains(&upper.as_str()) {
                format!("unknown HTTP method `{name}`; methods are written in capitals: `{upper}`")
            } else {
                format!("unknown HTTP method `{name}`; expected one of {}", METHODS.join(", "))
            };
            return Err(syn::Error::new(method.span(), message));
        }
        let route_usage = format!("`#[berth::http({method}, \"/path\")]`");
        if input.is_empty() {
            return Err(syn::Error::new(method.span(), format!("expected a route after `{method}`: {route_usage}")));
        }
        if !input.peek(Token![,]) {
            return Err(input.error(format!("expected `,` between the method and the route: {route_usage}")));
        }
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            return Err(syn::Error::new(method.span(), format!("expected a route after `{method}`: {route_usage}")));
        }
        if !input.peek(LitStr) {
            return Err(error_until_comma(input, &format!("a route is a string literal: {route_usage}")));
        }
        let route: LitStr = input.parse()?;
        if !route.value().starts_with('/') {
            return Err(syn::Error::new(
                route.span(),
                format!("a route must start with `/`: write \"/{}\"", route.value()),
            ));
        }
        let options = if input.is_empty() {
            Options::parse(input, OPTIONS)?
        } else if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            Options::parse(input, OPTIONS)?
        } else {
            return Err(input.error("expected `,` after the route"));
        };
        let (timeout_ms, body_limit) = (options.timeout_ms()?, options.body_limit()?);
        Ok(HttpArgs { method, route, timeout_ms, body_limit })
    }
}

/// Expands `#[berth::http(...)]`.
pub(crate) fn http(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let args: HttpArgs = syn::parse2(attr)?;
    let func = parse_fn(item, "http")?;
    let (method, route) = (args.method.to_string(), &args.route);
    let trigger = quote!(::berth::__private::TriggerDef::Http { method: #method, route: #route });
    expand_function(trigger, args.timeout_ms, args.body_limit, true, func)
}
