//! The `key = value` options shared by `#[berth::http]` and the event triggers, e.g.
//! `timeout = "2s", body_limit = "1MiB"` or `stream = "orders", concurrency = 4`.
//!
//! Each macro lists the options it takes ([`Spec`]); the parser rejects an unknown or repeated key
//! and a value of the wrong kind, each error spanned at the offending tokens.

use proc_macro2::TokenStream as TokenStream2;
use syn::{ext::IdentExt, parse::ParseStream, token::Bracket, Ident, LitBool, LitInt, LitStr, Token};

/// What an option's value must be.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `"text"`
    Str,
    /// `4`
    Int,
    /// `true` / `false`
    Bool,
    /// `["a", "b"]`, or a single `"a"`
    StrList,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Int => "a whole number",
            Kind::Bool => "`true` or `false`",
            Kind::StrList => "a list of strings",
        }
    }
}

/// One option a macro takes: its key, the kind of its value, and an example value for messages.
pub(crate) struct Spec {
    pub(crate) key: &'static str,
    pub(crate) kind: Kind,
    pub(crate) example: &'static str,
}

/// `timeout = "30s"`: how long one call may run (every function macro takes it).
pub(crate) const TIMEOUT: Spec = Spec { key: "timeout", kind: Kind::Str, example: "\"30s\"" };

/// `body_limit = "1MiB"`: the largest request body (HTTP only).
pub(crate) const BODY_LIMIT: Spec = Spec { key: "body_limit", kind: Kind::Str, example: "\"1MiB\"" };

/// A parsed option value; its kind is the one its [`Spec`] asks for.
pub(crate) enum Value {
    Str(LitStr),
    Int(LitInt),
    Bool(LitBool),
    List(Vec<LitStr>),
}

/// One `key = value`.
pub(crate) struct Pair {
    pub(crate) key: Ident,
    pub(crate) value: Value,
    /// The tokens of the value, to span errors about it.
    pub(crate) value_tokens: TokenStream2,
    /// The tokens of the whole `key = value`, to span errors about the option as a whole.
    pub(crate) tokens: TokenStream2,
}

/// The `key = value` options of one macro invocation, in source order, each key at most once.
pub(crate) struct Options {
    pairs: Vec<Pair>,
}

impl Options {
    pub(crate) fn empty() -> Self {
        Options { pairs: Vec::new() }
    }

    /// Parses comma-separated `key = value` pairs up to the end of `input` (a trailing comma is
    /// fine), each key one of `specs`.
    pub(crate) fn parse(input: ParseStream, specs: &[Spec]) -> syn::Result<Self> {
        let mut pairs: Vec<Pair> = Vec::new();
        while !input.is_empty() {
            let (mut pair, tokens) = parse_spanned(input, |input| parse_pair(input, specs))?;
            pair.tokens = tokens;
            if pairs.iter().any(|p| p.key == pair.key) {
                return Err(syn::Error::new_spanned(
                    &pair.tokens,
                    format!("option `{}` is given twice; keep only one `{} = ...`", pair.key, pair.key),
                ));
            }
            pairs.push(pair);
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between options"));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(Options { pairs })
    }

    /// The options in source order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = &Pair> {
        self.pairs.iter()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Pair> {
        self.pairs.iter().find(|p| p.key == key)
    }

    /// A [`Kind::Str`] option.
    pub(crate) fn string(&self, key: &str) -> Option<&LitStr> {
        match self.get(key).map(|p| &p.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A [`Kind::Int`] option as a `u32`; 0 when absent.
    pub(crate) fn int(&self, key: &str) -> syn::Result<u32> {
        let Some(Pair { value: Value::Int(i), value_tokens, .. }) = self.get(key) else { return Ok(0) };
        i.base10_parse().map_err(|_| {
            let message = if i.base10_digits().starts_with('-') {
                format!("`{key}` cannot be negative: give 0 or more")
            } else {
                format!("`{key}` is too large: at most {} is allowed", u32::MAX)
            };
            syn::Error::new_spanned(value_tokens, message)
        })
    }

    /// A [`Kind::Bool`] option; `false` when absent.
    pub(crate) fn boolean(&self, key: &str) -> bool {
        match self.get(key).map(|p| &p.value) {
            Some(Value::Bool(b)) => b.value,
            _ => false,
        }
    }

    /// A [`Kind::StrList`] option; empty when absent.
    pub(crate) fn list(&self, key: &str) -> Vec<LitStr> {
        match self.get(key).map(|p| &p.value) {
            Some(Value::List(l)) => l.clone(),
            Some(Value::Str(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    /// `timeout = "30s"` in milliseconds (at least 1); 0 when absent (the host's default).
    pub(crate) fn timeout_ms(&self) -> syn::Result<u64> {
        let Some(lit) = self.string(TIMEOUT.key) else { return Ok(0) };
        let d = humantime::parse_duration(&lit.value()).map_err(|e| {
            syn::Error::new(lit.span(), format!("bad timeout `{}`: {e} (try \"500ms\" or \"30s\")", lit.value()))
        })?;
        Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1))
    }

    /// `body_limit = "1MiB"` in bytes (at least 1); 0 when absent (the host's default).
    pub(crate) fn body_limit(&self) -> syn::Result<u64> {
        let Some(lit) = self.string(BODY_LIMIT.key) else { return Ok(0) };
        // bytesize's own messages ("cannot parse float from empty string") say little here.
        let b: bytesize::ByteSize = lit.value().parse().map_err(|_| {
            syn::Error::new(
                lit.span(),
                format!(
                    "bad body_limit `{}`: a size is a number and a unit (B, KiB, MiB, GiB, KB, MB, ...): try \"64KiB\" or \"6MiB\"",
                    lit.value()
                ),
            )
        })?;
        Ok(b.as_u64().max(1))
    }
}

fn parse_pair(input: ParseStream, specs: &[Spec]) -> syn::Result<Pair> {
    let keys: Vec<&str> = specs.iter().map(|s| s.key).collect();
    if !input.peek(Ident::peek_any) {
        return Err(error_until_comma(
            input,
            &format!("expected an option `key = value`, where key is {}", one_of(&keys)),
        ));
    }
    let key = Ident::parse_any(input)?;
    let Some(spec) = specs.iter().find(|s| key == s.key) else {
        return Err(unknown(&key, "option", &keys));
    };
    let example = format!("`{key} = {}`", spec.example);
    if !input.peek(Token![=]) {
        if input.is_empty() || input.peek(Token![,]) {
            return Err(syn::Error::new(key.span(), format!("option `{key}` needs a value: {example}")));
        }
        return Err(input.error(format!("expected `=` after `{key}`: {example}")));
    }
    let eq: Token![=] = input.parse()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new_spanned(
            quote::quote!(#key #eq),
            format!("option `{key}` needs a value: {example}"),
        ));
    }
    let (value, value_tokens) = parse_spanned(input, |input| parse_value(input, &key, spec, &example))?;
    Ok(Pair { key, value, value_tokens, tokens: TokenStream2::new() })
}

/// The value of `key`, of the kind `spec` asks for.
fn parse_value(input: ParseStream, key: &Ident, spec: &Spec, example: &str) -> syn::Result<Value> {
    Ok(match spec.kind {
        Kind::Str if input.peek(LitStr) => Value::Str(input.parse()?),
        Kind::Int if input.peek(LitInt) => Value::Int(input.parse()?),
        Kind::Bool if input.peek(LitBool) => Value::Bool(input.parse()?),
        Kind::StrList if input.peek(LitStr) => Value::Str(input.parse()?),
        Kind::StrList if input.peek(Bracket) => {
            let content;
            syn::bracketed!(content in input);
            let mut items = Vec::new();
            while !content.is_empty() {
                if !content.peek(LitStr) {
                    return Err(error_until_comma(&content, &format!("`{key}` lists strings, in quotes: {example}")));
                }
                items.push(content.parse()?);
                if content.is_empty() {
                    break;
                }
                if !content.peek(Token![,]) {
                    return Err(content.error("expected `,` between the strings of the list"));
                }
                content.parse::<Token![,]>()?;
            }
            Value::List(items)
        }
        _ => return Err(error_until_comma(input, &format!("`{key}` takes {}: {example}", spec.kind.describe()))),
    })
}

/// Runs `parse` and returns what it parsed with the tokens it consumed (to span an error over
/// them with [`syn::Error::new_spanned`]).
pub(crate) fn parse_spanned<T>(
    input: ParseStream,
    parse: impl FnOnce(ParseStream) -> syn::Result<T>,
) -> syn::Result<(T, TokenStream2)> {
    let start = input.fork();
    let value = parse(input)?;
    let end = input.cursor();
    let tokens = start.step(|cursor| {
        let (mut rest, mut tokens) = (*cursor, TokenStream2::new());
        while rest != end {
            let Some((tt, next)) = rest.token_tree() else { break };
            tokens.extend([tt]);
            rest = next;
        }
        Ok((tokens, rest))
    })?;
    Ok((value, tokens))
}

/// An error spanned over the tokens from here to the next `,` (or the end), which it consumes.
pub(crate) fn error_until_comma(input: ParseStream, message: &str) -> syn::Error {
    let tokens = input.step(|cursor| {
        let (mut rest, mut tokens) = (*cursor, TokenStream2::new());
        while let Some((tt, next)) = rest.token_tree() {
            if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                break;
            }
            tokens.extend([tt]);
            rest = next;
        }
        Ok((tokens, rest))
    });
    match tokens {
        Ok(tokens) if !tokens.is_empty() => syn::Error::new_spanned(tokens, message),
        _ => input.error(message),
    }
}

/// "unknown option `timout`; did you mean `timeout`?", or the list of what is expected.
pub(crate) fn unknown(key: &Ident, what: &str, expected: &[&str]) -> syn::Error {
    let key_str = key.unraw().to_string();
    let message = match closest(&key_str, expected) {
        Some(near) => format!("unknown {what} `{key_str}`; did you mean `{near}`?"),
        None => format!("unknown {what} `{key_str}`; expected {}", one_of(expected)),
    };
    syn::Error::new(key.span(), message)
}

/// "`a`", "`a` or `b`", "`a`, `b` or `c`".
pub(crate) fn one_of(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The candidate within a small edit distance of `word` (a likely typo), if one is.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 2);
    candidates.iter().map(|c| (edit_distance(word, c), *c)).filter(|(d, _)| *d <= limit).min().map(|(_, c)| c)
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap of two neighbours as
/// one edit (optimal string alignment), so `nmae` is one edit from `name`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_lists_with_or() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b"]), "`a` or `b`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }

    #[test]
    fn typos_suggest_the_near_key_only() {
        let keys = ["timeout", "body_limit", "name", "stream", "queue"];
        assert_eq!(closest("timout", &keys), Some("timeout"));
        assert_eq!(closest("nmae", &keys), Some("name"));
        assert_eq!(closest("steam", &keys), Some("stream"));
        assert_eq!(closest("retries", &keys), None);
        assert_eq!(closest("x", &keys), None);
    }

    #[test]
    fn options_reject_a_repeated_key_at_the_repetition() {
        let parser = |input: ParseStream| Options::parse(input, &[TIMEOUT, BODY_LIMIT]);
        let err = syn::parse::Parser::parse_str(parser, r#"timeout = "1s", timeout = "2s""#).err().unwrap();
        assert_eq!(err.to_string(), "option `timeout` is given twice; keep only one `timeout = ...`");
        let ok = syn::parse::Parser::parse_str(parser, r#"body_limit = "1KiB", timeout = "2s","#).unwrap();
        assert_eq!((ok.timeout_ms().unwrap(), ok.body_limit().unwrap()), (2000, 1024));
    }
}
