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
                format!(
                    "unknown HTTP method `{method}`; expected one of {}",
                    METHODS.join(", ")
                ),
            ));
        }
        input.parse::<Token![,]>()?;
        let route: LitStr = input.parse()?;
        if !route.value().starts_with('/') {
            return Err(syn::Error::new(route.span(), "a route must start with `/`"));
        }
        let mut args = HttpArgs {
            method,
            route,
            timeout_ms: 0,
            body_limit: 0,
        };
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
                            format!(
                                "bad timeout `{}`: {e} (try \"500ms\" or \"30s\")",
                                lit.value()
                            ),
                        )
                    })?;
                    args.timeout_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
                }
                "body_limit" => {
                    let lit: LitStr = input.parse()?;
                    let b: bytesize::ByteSize = lit.value().parse().map_err(|e| {
                        syn::Error::new(
                            lit.span(),
                            format!(
                                "bad body_limit `{}`: {e} (try \"64KiB\" or \"6MiB\")",
                                lit.value()
                            ),
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
    expand_http(args, func)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand_http(args: HttpArgs, func: ItemFn) -> syn::Result<TokenStream2> {
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            func.sig.fn_token,
            "a berth function must be `async fn`",
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            "a berth function cannot be generic",
        ));
    }
    let name = &func.sig.ident;
    let def_fn = format_ident!("__berth_fn_{}", name);
    let mut extract = Vec::new();
    let mut call_args = Vec::new();
    for (i, arg) in func.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat) = arg else {
            return Err(syn::Error::new_spanned(
                arg,
                "a berth function cannot take `self`",
            ));
        };
        let ty = &pat.ty;
        let var = format_ident!("__arg{}", i);
        extract.push(quote! {
            let #var = <#ty as ::berth::FromCall>::from_call(&__ctx, &mut __req)?;
        });
        call_args.push(var);
    }
    let method = args.method.to_string();
    let route = &args.route;
    let timeout_ms = args.timeout_ms;
    let body_limit = args.body_limit;
    let name_str = name.to_string();
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        pub fn #def_fn() -> ::berth::__private::FunctionDef {
            fn __handler(
                __ctx: ::berth::Context,
                mut __req: ::berth::Request,
            ) -> ::berth::__private::HandlerFuture {
                ::std::boxed::Box::pin(async move {
                    #(#extract)*
                    ::berth::IntoResponse::into_response(#name(#(#call_args),*).await)
                })
            }
            ::berth::__private::FunctionDef {
                name: #name_str,
                triggers: ::std::vec![::berth::__private::TriggerDef::Http { method: #method, route: #route }],
                timeout_ms: #timeout_ms,
                body_limit: #body_limit,
                handler: __handler,
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
}

impl Parse for GroupArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = GroupArgs {
            name: None,
            version: None,
            functions: Vec::new(),
            init: None,
            stop: None,
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
                other => return Err(syn::Error::new(
                    key.span(),
                    format!(
                        "unknown key `{other}`; expected name, version, functions, init or stop"
                    ),
                )),
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
        return syn::Error::new(
            Span::call_site(),
            "a group needs at least one function: `berth::group!(my_fn)`",
        )
        .into_compile_error()
        .into();
    }
    let defs = args
        .functions
        .iter()
        .map(|f| format_ident!("__berth_fn_{}", f));
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
    quote! {
        /// This crate's function group, as the `berth` host and test harness see it.
        pub fn berth_group() -> ::berth::__private::GroupDef {
            ::berth::__private::GroupDef {
                name: #name,
                version: #version,
                functions: ::std::vec![#(#defs()),*],
                init: #init,
                stop: #stop,
            }
        }
        ::berth::__export_plugin!(berth_group);
    }
    .into()
}
