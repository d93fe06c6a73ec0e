//! Finding `$N` placeholders in a statement, outside quoted strings, quoted identifiers and
//! comments, so MySQL (which only knows `?`) can take `$1..$N` like the other backends, and so a
//! statement that names more parameters than it was given is refused instead of reading NULLs.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `'..'` and `".."` strings with backslash escapes, `` `..` `` identifiers, `-- `, `#` and
    /// `/* */` comments; `$N` is rewritten to `?`.
    Mysql,
    /// `'..'` strings, `".."`, `` `..` `` and `[..]` identifiers, `--` and `/* */` comments; the
    /// text is kept (SQLite binds `$N` itself).
    Sqlite,
}

/// What [`scan`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Scanned<'a> {
    /// The statement to send: for MySQL with each `$N` replaced by `?`.
    pub sql: Cow<'a, str>,
    /// For each `$N` in order of appearance, its parameter index (`N - 1`).
    pub order: Vec<usize>,
    /// How many bare `?` placeholders the statement has.
    pub question_marks: usize,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The index just past the quoted text that starts at `start` (or the end of `sql`).
fn skip_quoted(b: &[u8], start: usize, close: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            c if c == close => {
                if b.get(i + 1) == Some(&close) {
                    i += 2; // a doubled quote stays inside
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

fn skip_past(b: &[u8], from: usize, end: &[u8]) -> usize {
    b[from..].windows(end.len()).position(|w| w == end).map_or(b.len(), |p| from + p + end.len())
}

/// Finds the placeholders of `sql`. Fails on `$0`, on a number too large to be a parameter, and
/// (MySQL) on a statement that mixes `$N` and `?`.
pub(super) fn scan(sql: &str, dialect: Dialect) -> Result<Scanned<'_>, String> {
    let b = sql.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut order = Vec::new();
    let mut question_marks = 0;
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        match b[i] {
            b'\'' | b'"' => i = skip_quoted(b, i, b[i], dialect == Dialect::Mysql),
            b'`' => i = skip_quoted(b, i, b'`', false),
            b'[' if dialect == Dialect::Sqlite => i = skip_past(b, i, b"]"),
            b'-' if next == Some(b'-')
                && (dialect == Dialect::Sqlite || b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace())) =>
            {
                i = skip_past(b, i, b"\n")
            }
            b'#' if dialect == Dialect::Mysql => i = skip_past(b, i, b"\n"),
            b'/' if next == Some(b'*') => i = skip_past(b, i + 2, b"*/"),
            b'?' => {
                question_marks += 1;
                i += 1;
            }
            b'$' if next.is_some_and(|c| c.is_ascii_digit()) => {
                let start = i;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && is_ident(b[i]) {
                    // `$1abc` is an identifier (MySQL and SQLite allow `$` in names).
                    while i < b.len() && is_ident(b[i]) {
                        i += 1;
                    }
                    continue;
                }
                let digits = &sql[start + 1..i];
                let n: usize = digits.parse().map_err(|_| format!("`${digits}` is not a parameter number"))?;
                if n == 0 {
                    return Err("`$0` is not a parameter: placeholders count from `$1`".into());
                }
                order.push(n - 1);
                if dialect == Dialect::Mysql {
                    out.push_str(&sql[copied..start]);
                    out.push('?');
                    copied = i;
                }
            }
            c if is_ident(c) => {
                // Whole words, so a `$` inside a name (`price$1`) is never a placeholder.
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    if dialect == Dialect::Mysql && !order.is_empty() && question_marks > 0 {
        return Err("the statement mixes `$N` and `?` placeholders; use `$1..$N` only".into());
    }
    let sql = if copied == 0 {
        Cow::Borrowed(sql)
    } else {
        out.push_str(&sql[copied..]);
        Cow::Owned(out)
    };
    Ok(Scanned { sql, order, question_marks })
}

/// Checks that every `$N` of the statement has a parameter.
pub(super) fn check_count(order: &[usize], given: usize) -> Result<(), String> {
    match order.iter().max() {
        Some(&max) if max >= given => Err(format!(
            "the statement uses `${}` but {given} parameter{} {} given",
            max + 1,
            if given == 1 { "" } else { "s" },
            if given == 1 { "was" } else { "were" }
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql(sql: &str) -> (String, Vec<usize>) {
        let s = scan(sql, Dialect::Mysql).unwrap();
        (s.sql.into_owned(), s.order)
    }

    #[test]
    fn mysql_placeholders_become_question_marks_in_the_order_they_appear() {
        assert_eq!(
            mysql("SELECT * FROM t WHERE a = $2 AND b = $1"),
            ("SELECT * FROM t WHERE a = ? AND b = ?".into(), vec![1, 0])
        );
        assert_eq!(mysql("INSERT INTO t VALUES ($1,$2,$1)"), ("INSERT INTO t VALUES (?,?,?)".into(), vec![0, 1, 0]));
        assert_eq!(mysql("SELECT $10"), ("SELECT ?".into(), vec![9]));
        let (sql, order) = mysql("SELECT 1");
        assert_eq!((sql.as_str(), order.len()), ("SELECT 1", 0));
    }

    #[test]
    fn quoted_text_identifiers_and_comments_are_left_alone() {
        let cases = [
            "SELECT '$1', \"$2\", `$3` FROM t",
            "SELECT 'it''s $1', 'a\\'$1' FROM t",
            "SELECT 1 -- $1\n",
            "SELECT 1 # $1\n",
            "SELECT /* $1 */ 1",
            "SELECT price$1, $1abc FROM t",
        ];
        for sql in cases {
            let (out, order) = mysql(sql);
            assert_eq!((out.as_str(), order.len()), (sql, 0), "{sql}");
        }
        assert_eq!(mysql("SELECT '$1', $1 -- $2\n, $2"), ("SELECT '$1', ? -- $2\n, ?".into(), vec![0, 1]));
        // `--` without a space is a minus of a minus in MySQL, not a comment.
        assert_eq!(mysql("SELECT 1--$1"), ("SELECT 1--?".into(), vec![0]));
        // Multi-byte text around placeholders survives.
        assert_eq!(mysql("SELECT 'héllo', $1, 'ü'"), ("SELECT 'héllo', ?, 'ü'".into(), vec![0]));
    }

    #[test]
    fn sqlite_keeps_the_text_and_reports_the_numbers() {
        let s = scan("SELECT [$9], \"$8\", $2 -- $7\n FROM t WHERE x = $1", Dialect::Sqlite).unwrap();
        assert_eq!(s.sql, "SELECT [$9], \"$8\", $2 -- $7\n FROM t WHERE x = $1");
        assert_eq!(s.order, [1, 0]);
        // SQLite has no backslash escapes: the quote after the backslash ends the string.
        assert_eq!(scan("SELECT 'a\\', $1", Dialect::Sqlite).unwrap().order, [0]);
    }

    #[test]
    fn bad_placeholders_are_refused() {
        assert!(scan("SELECT $0", Dialect::Mysql).unwrap_err().contains("count from `$1`"));
        assert!(scan("SELECT $1, ?", Dialect::Mysql).unwrap_err().contains("mixes"));
        assert!(scan("SELECT $99999999999999999999999", Dialect::Sqlite).is_err());
        assert_eq!(scan("SELECT ?, ?", Dialect::Mysql).unwrap().question_marks, 2);
        assert_eq!(check_count(&[0, 2], 2).unwrap_err(), "the statement uses `$3` but 2 parameters were given");
        assert!(check_count(&[0, 1], 2).is_ok());
    }
}
