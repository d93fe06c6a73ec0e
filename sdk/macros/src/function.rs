//! What every function macro (`http`, `timer`, `queue`, `blob`) generates around the user's
//! `async fn`: a `__berth_fn_<name>()` returning its `FunctionDef`, which `group!` collects.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{FnArg, Item, ItemFn};

/// Parses the item under `#[berth::<attr>]`, which must be a function.
pub(crate) fn parse_fn(item: TokenStream2, attr: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|e| match syn::parse2::<Item>(item) {
        Ok(Item::Fn(_)) | Err(_) => e,
        Ok(other) => {
            let (what, span) = describe(&other).unwrap_or(("this item", e.span()));
            syn::Error::new(span, format!("`#[berth::{attr}]` goes on an `async fn`, not on {what}"))
        }
    })
}

/// What an item is, and the span of its keyword.
fn describe(item: &Item) -> Option<(&'static str, Span)> {
    Some(match item {
        Item::Struct(i) => ("a struct", i.struct_token.span),
        Item::Enum(i) => ("an enum", i.enum_token.span),
        Item::Union(i) => ("a union", i.union_token.span),
        Item::Const(i) => ("a const", i.const_token.span),
        Item::Static(i) => ("a static", i.static_token.span),
        Item::Impl(i) => ("an impl block", i.impl_token.span),
        Item::Trait(i) => ("a trait", i.trait_token.span),
        Item::Mod(i) => ("a module", i.mod_token.span),
        Item::Type(i) => ("a type alias", i.type_token.span),
        Item::Use(i) => ("a `use`", i.use_token.span),
        _ => return None,
    })
}

/// The function as written, plus `__berth_fn_<name>()`: the extractors applied to the call and
/// the `FunctionDef` with `trigger`, `timeout_ms` and `body_limit` (0 = the host's default).
pub(crate) fn expand_function(
    trigger: TokenStream2,
    timeout_ms: u64,
    body_limit: u64,
    describe: bool,
    func: ItemFn,
) -> syn::Result<TokenStream2> {
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            func.sig.fn_token,
            format!("a berth function must be `async fn`: write `async fn {}(...)`", func.sig.ident),
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.generics,
            "a berth function cannot be generic: remove `<...>` and use concrete types",
        ));
    }
    let name = &func.sig.ident;
    let def_fn = format_ident!("__berth_fn_{}", name);
    let mut extract = Vec::new();
    let mut call_args = Vec::new();
    let mut arg_types = Vec::new();
    for (i, arg) in func.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pat) = arg else {
            return Err(syn::Error::new_spanned(
                arg,
                "a berth function cannot take `self`: make it a free function, and take `ctx: berth::Context` for the host's services",
            ));
        };
        let ty = &pat.ty;
        arg_types.push(ty.clone());
        let var = format_ident!("__arg{}", i);
        extract.push(quote! {
            let #var = <#ty as ::berth::FromCall>::from_call(&__ctx, &mut __req)?;
        });
        call_args.push(var);
    }
    let name_str = name.to_string();
    let describe = if describe { describer(&func, &arg_types) } else { quote!(::std::option::Option::None) };
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
                describe: #describe,
            }
        }
    })
}

/// `Some(describe)`: what the function's signature says of its API (its argument types, its
/// answer type peeled of `Result`, its doc comment), through the SDK's `openapi` probes.
fn describer(func: &ItemFn, arg_types: &[Box<syn::Type>]) -> TokenStream2 {
    let doc: Vec<String> = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').map(str::to_owned).unwrap_or(line))
        .collect();
    let doc = doc.join("\n");
    let (answer, errors) = match &func.sig.output {
        syn::ReturnType::Default => (quote!(()), false),
        syn::ReturnType::Type(_, ty) => match peel_result(ty) {
            Some(inner) => (answer_type(inner), true),
            None => (answer_type(ty), false),
        },
    };
    let set_errors = errors.then(|| quote!(__d.set_errors();));
    let probes = arg_types
        .iter()
        .filter(|ty| !matches!(***ty, syn::Type::ImplTrait(_)))
        .map(|ty| quote!((&&&::berth::__private::openapi::Probe::<#ty>::new()).describe_arg(__d);));
    quote! {{
        #[allow(clippy::needless_borrow)]
        fn __describe(__d: &mut ::berth::__private::openapi::Describer) {
            #[allow(unused_imports)]
            use ::berth::__private::openapi::{
                AnswerKind as _, AnswerOther as _, AnswerSchema as _, ArgKind as _, ArgOther as _, ArgSchema as _,
            };
            __d.set_doc(#doc);
            #(#probes)*
            #set_errors
            (&&&::berth::__private::openapi::Probe::<#answer>::new()).describe_answer(__d);
        }
        ::std::option::Option::Some(__describe as fn(&mut ::berth::__private::openapi::Describer))
    }}
}

/// `T` of `Result<T>` / `Result<T, E>` / `berth::Result<T>`.
fn peel_result(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// The type to probe for the answer: as written, or `Response` for an `impl Trait`.
fn answer_type(ty: &syn::Type) -> TokenStream2 {
    match ty {
        syn::Type::ImplTrait(_) => quote!(::berth::Response),
        other => quote!(#other),
    }
}
