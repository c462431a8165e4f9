//! The search query language: parsing text into a tree, with errors that say where.
//!
//! ```text
//! query   := or
//! or      := and ("OR" and)*
//! and     := unary (["AND"] unary)*          words combine with AND by default
//! unary   := ("NOT" | "-") unary | "+" unary | primary
//! primary := "(" or ")" | scope ":" (word | phrase | "(" or ")") | phrase | word
//! phrase  := '"' … '"'
//! word    := letters, digits and inner punctuation; a trailing '*' makes a prefix
//! ```
//!
//! Operators are upper case (`AND`, `OR`, `NOT`); in lower case they are words. A scope
//! applies to everything inside its parentheses. Limits keep any one query cheap: at most
//! [`MAX_TERMS`] words and phrases, [`MAX_PREFIXES`] prefixes and [`MAX_DEPTH`] levels of
//! nesting.

use std::fmt;

/// Most words and phrases in one query.
pub const MAX_TERMS: usize = 32;
/// Most prefix words (`word*`) in one query.
pub const MAX_PREFIXES: usize = 4;
/// Deepest nesting of parentheses and NOTs.
pub const MAX_DEPTH: usize = 16;
/// Shortest prefix, in characters, before a `*`.
pub const MIN_PREFIX_CHARS: usize = 2;

/// Where a word is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Headline, lead, body and captions together.
    Text,
    Headline,
    Lead,
    Body,
    Caption,
    Source,
    Tag,
    Language,
    Kind,
    Entity,
}

impl Scope {
    /// The field names a query may use, for error messages.
    fn names() -> String {
        let names: Vec<&str> = Scope::ALL.iter().filter_map(|s| s.name()).collect();
        names.join(", ")
    }

    const ALL: [Scope; 10] = [
        Scope::Text,
        Scope::Headline,
        Scope::Lead,
        Scope::Body,
        Scope::Caption,
        Scope::Source,
        Scope::Tag,
        Scope::Language,
        Scope::Kind,
        Scope::Entity,
    ];

    fn from_name(name: &str) -> Option<Scope> {
        let name = name.to_ascii_lowercase();
        let name = match name.as_str() {
            "title" => "headline",
            "captions" => "caption",
            "tags" => "tag",
            "lang" => "language",
            other => other,
        };
        Scope::ALL.into_iter().find(|s| s.name() == Some(name))
    }
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// One word; `prefix` when written `word*`.
    Word {
        scope: Scope,
        text: String,
        prefix: bool,
        /// Character position in the query, from 1.
        at: usize,
    },
    /// Words in this order, next to each other.
    Phrase {
        scope: Scope,
        text: String,
        at: usize,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Scope {
    /// The name a query writes before a colon; `None` for the default scope.
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Scope::Text => return None,
            Scope::Headline => "headline",
            Scope::Lead => "lead",
            Scope::Body => "body",
            Scope::Caption => "caption",
            Scope::Source => "source",
            Scope::Tag => "tag",
            Scope::Language => "language",
            Scope::Kind => "kind",
            Scope::Entity => "entity",
        })
    }
}

impl Node {
    /// The tree with every character position set to 0, to compare shapes.
    pub fn without_positions(&self) -> Node {
        match self {
            Node::Word {
                scope,
                text,
                prefix,
                ..
            } => Node::Word {
                scope: *scope,
                text: text.clone(),
                prefix: *prefix,
                at: 0,
            },
            Node::Phrase { scope, text, .. } => Node::Phrase {
                scope: *scope,
                text: text.clone(),
                at: 0,
            },
            Node::And(items) => Node::And(items.iter().map(Node::without_positions).collect()),
            Node::Or(items) => Node::Or(items.iter().map(Node::without_positions).collect()),
            Node::Not(inner) => Node::Not(Box::new(inner.without_positions())),
        }
    }
}

/// The query in the language it was parsed from, with the fewest parentheses that keep its
/// shape and every scope written out on its word; it parses back to the same tree, positions
/// aside (the fuzz target `search_query` holds it to that).
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn scoped(f: &mut fmt::Formatter<'_>, scope: Scope) -> fmt::Result {
            match scope.name() {
                Some(name) => write!(f, "{name}:"),
                None => Ok(()),
            }
        }
        fn grouped(f: &mut fmt::Formatter<'_>, node: &Node, parenthesise: bool) -> fmt::Result {
            if parenthesise {
                write!(f, "({node})")
            } else {
                write!(f, "{node}")
            }
        }
        match self {
            Node::Word {
                scope,
                text,
                prefix,
                ..
            } => {
                scoped(f, *scope)?;
                write!(f, "{text}{}", if *prefix { "*" } else { "" })
            }
            Node::Phrase { scope, text, .. } => {
                scoped(f, *scope)?;
                write!(f, "\"{text}\"")
            }
            Node::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    grouped(f, item, matches!(item, Node::And(_) | Node::Or(_)))?;
                }
                Ok(())
            }
            Node::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" OR ")?;
                    }
                    grouped(f, item, matches!(item, Node::Or(_)))?;
                }
                Ok(())
            }
            Node::Not(inner) => {
                f.write_str("NOT ")?;
                grouped(f, inner, matches!(**inner, Node::And(_) | Node::Or(_)))
            }
        }
    }
}

/// Why a query could not be parsed: what and where (a character position from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.at)
    }
}

fn error(at: usize, message: impl Into<String>) -> QueryError {
    QueryError {
        at,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Plus,
    Scope(Scope),
    Word { text: String, prefix: bool },
    Phrase(String),
}

/// Splits a query into tokens with their character positions (from 1).
fn lex(query: &str) -> Result<Vec<(Token, usize)>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let is_word_char = |c: char| !c.is_whitespace() && !matches!(c, '(' | ')' | '"');
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((Token::Open, at));
                i += 1;
            }
            ')' => {
                tokens.push((Token::Close, at));
                i += 1;
            }
            '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&q| q == '"')
                    .ok_or_else(|| error(at, "this quote is never closed"))?;
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                tokens.push((Token::Phrase(text), at));
                i += end + 2;
            }
            '-' if chars
                .get(i + 1)
                .is_some_and(|&n| is_word_char(n) || n == '(' || n == '"') =>
            {
                tokens.push((Token::Not, at));
                i += 1;
            }
            '+' if chars
                .get(i + 1)
                .is_some_and(|&n| is_word_char(n) || n == '(' || n == '"') =>
            {
                tokens.push((Token::Plus, at));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                // "field:" scopes what follows; digits before a colon ("10:30") are a word.
                if let Some(name) = word.strip_suffix(':')
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphabetic())
                {
                    let scope = Scope::from_name(name).ok_or_else(|| {
                        error(
                            at,
                            format!("unknown field \"{name}\"; fields are {}", Scope::names()),
                        )
                    })?;
                    tokens.push((Token::Scope(scope), at));
                    continue;
                }
                if let Some((name, rest)) = word.split_once(':')
                    && !name.is_empty()
                    && !rest.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphabetic())
                {
                    let scope = Scope::from_name(name).ok_or_else(|| {
                        error(
                            at,
                            format!("unknown field \"{name}\"; fields are {}", Scope::names()),
                        )
                    })?;
                    tokens.push((Token::Scope(scope), at));
                    let rest_at = at + name.chars().count() + 1;
                    tokens.push((word_token(rest, rest_at)?, rest_at));
                    continue;
                }
                let token = match word.as_str() {
                    "AND" | "&&" => Token::And,
                    "OR" | "||" => Token::Or,
                    "NOT" => Token::Not,
                    _ => word_token(&word, at)?,
                };
                tokens.push((token, at));
            }
        }
    }
    Ok(tokens)
}

fn word_token(word: &str, at: usize) -> Result<Token, QueryError> {
    match word.strip_suffix('*') {
        Some(stem) => {
            if stem.contains('*') || stem.chars().count() < MIN_PREFIX_CHARS {
                return Err(error(
                    at,
                    format!("a '*' may only end a word of at least {MIN_PREFIX_CHARS} characters"),
                ));
            }
            Ok(Token::Word {
                text: stem.to_string(),
                prefix: true,
            })
        }
        None if word.contains('*') => Err(error(at, "a '*' may only end a word")),
        None => Ok(Token::Word {
            text: word.to_string(),
            prefix: false,
        }),
    }
}

/// Parses a query. An empty or blank query is `None`.
pub fn parse(query: &str) -> Result<Option<Node>, QueryError> {
    let tokens = lex(query)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: query.chars().count() + 1,
        terms: 0,
        prefixes: 0,
    };
    let node = parser.or(Scope::Text, 0)?;
    if let Some((_, at)) = parser.tokens.get(parser.next) {
        return Err(error(*at, "this ')' has no matching '('"));
    }
    Ok(Some(node))
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    /// Position just past the end, for errors at the end.
    end: usize,
    terms: usize,
    prefixes: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(_, at)| *at)
    }

    fn or(&mut self, scope: Scope, depth: usize) -> Result<Node, QueryError> {
        let mut items = vec![self.and(scope, depth)?];
        while self.peek() == Some(&Token::Or) {
            self.next += 1;
            items.push(self.and(scope, depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self, scope: Scope, depth: usize) -> Result<Node, QueryError> {
        let mut items = vec![self.unary(scope, depth)?];
        loop {
            match self.peek() {
                None | Some(Token::Or | Token::Close) => break,
                Some(Token::And) => {
                    self.next += 1;
                }
                Some(_) => {}
            }
            items.push(self.unary(scope, depth)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Node::And(items)
        })
    }

    fn unary(&mut self, scope: Scope, depth: usize) -> Result<Node, QueryError> {
        if depth > MAX_DEPTH {
            return Err(error(
                self.at(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        match self.peek() {
            Some(Token::Not) => {
                self.next += 1;
                Ok(Node::Not(Box::new(self.unary(scope, depth + 1)?)))
            }
            Some(Token::Plus) => {
                self.next += 1;
                self.unary(scope, depth + 1)
            }
            _ => self.primary(scope, depth),
        }
    }

    fn primary(&mut self, scope: Scope, depth: usize) -> Result<Node, QueryError> {
        let at = self.at();
        let Some((token, _)) = self.tokens.get(self.next).cloned() else {
            return Err(error(at, "the query ends where a word was expected"));
        };
        self.next += 1;
        match token {
            Token::Open => {
                let inner = self.or(scope, depth + 1)?;
                if self.peek() != Some(&Token::Close) {
                    return Err(error(at, "this '(' is never closed"));
                }
                self.next += 1;
                Ok(inner)
            }
            Token::Scope(inner) => {
                if scope != Scope::Text {
                    return Err(error(at, "a field cannot be scoped inside another field"));
                }
                match self.peek() {
                    Some(Token::Open | Token::Word { .. } | Token::Phrase(_)) => {
                        self.primary(inner, depth + 1)
                    }
                    _ => Err(error(
                        self.at(),
                        "a field name must be followed by a word, a \"phrase\" or (…)",
                    )),
                }
            }
            Token::Word { text, prefix } => {
                self.count(at, prefix)?;
                Ok(Node::Word {
                    scope,
                    text,
                    prefix,
                    at,
                })
            }
            Token::Phrase(text) => {
                self.count(at, false)?;
                Ok(Node::Phrase { scope, text, at })
            }
            Token::Close => Err(error(at, "this ')' has no matching '(' or closes nothing")),
            Token::And | Token::Or => Err(error(
                at,
                "AND and OR need a word on each side (write them in lower case to search for them)",
            )),
            Token::Not | Token::Plus => Err(error(at, "an operator is missing its word")),
        }
    }

    fn count(&mut self, at: usize, prefix: bool) -> Result<(), QueryError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(error(
                at,
                format!("the query has more than {MAX_TERMS} words and phrases"),
            ));
        }
        if prefix {
            self.prefixes += 1;
            if self.prefixes > MAX_PREFIXES {
                return Err(error(
                    at,
                    format!("the query has more than {MAX_PREFIXES} prefix* words"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(scope: Scope, text: &str, at: usize) -> Node {
        Node::Word {
            scope,
            text: text.into(),
            prefix: false,
            at,
        }
    }

    #[test]
    fn a_printed_query_parses_to_the_same_tree() {
        for (query, printed) in [
            ("kerry lavrov", "kerry lavrov"),
            ("a OR b c", "a OR b c"),
            ("(a OR b) c", "(a OR b) c"),
            ("a (b c)", "a (b c)"),
            ("-(a b) NOT c", "NOT (a b) NOT c"),
            (
                "title:(syria OR \"peace talks\") geneva*",
                "(headline:syria OR headline:\"peace talks\") geneva*",
            ),
            ("-", "-"),
            ("10:30", "10:30"),
        ] {
            let tree = parse(query).unwrap().unwrap();
            assert_eq!(tree.to_string(), printed, "{query}");
            let again = parse(printed).unwrap().unwrap();
            assert_eq!(
                again.without_positions(),
                tree.without_positions(),
                "{query}"
            );
        }
    }

    #[test]
    fn words_combine_with_and_and_operators_bind_as_usual() {
        assert_eq!(
            parse("kerry lavrov").unwrap().unwrap(),
            Node::And(vec![
                word(Scope::Text, "kerry", 1),
                word(Scope::Text, "lavrov", 7)
            ])
        );
        assert_eq!(
            parse("a OR b c").unwrap().unwrap(),
            Node::Or(vec![
                word(Scope::Text, "a", 1),
                Node::And(vec![word(Scope::Text, "b", 6), word(Scope::Text, "c", 8)])
            ])
        );
        assert_eq!(
            parse("(a OR b) AND NOT c -d").unwrap().unwrap(),
            Node::And(vec![
                Node::Or(vec![word(Scope::Text, "a", 2), word(Scope::Text, "b", 7)]),
                Node::Not(Box::new(word(Scope::Text, "c", 18))),
                Node::Not(Box::new(word(Scope::Text, "d", 21))),
            ])
        );
    }

    #[test]
    fn scopes_phrases_and_prefixes() {
        assert_eq!(
            parse("entity:\"John Kerry\" headline:(talks OR deal) syr*")
                .unwrap()
                .unwrap(),
            Node::And(vec![
                Node::Phrase {
                    scope: Scope::Entity,
                    text: "John Kerry".into(),
                    at: 8
                },
                Node::Or(vec![
                    word(Scope::Headline, "talks", 31),
                    word(Scope::Headline, "deal", 40)
                ]),
                Node::Word {
                    scope: Scope::Text,
                    text: "syr".into(),
                    prefix: true,
                    at: 46
                },
            ])
        );
        assert_eq!(
            parse("kind:person").unwrap().unwrap(),
            word(Scope::Kind, "person", 6)
        );
        // Digits before a colon are a word; lower-case operators are words.
        assert_eq!(
            parse("10:30").unwrap().unwrap(),
            word(Scope::Text, "10:30", 1)
        );
        assert_eq!(parse("   ").unwrap(), None);
        assert!(
            matches!(parse("war and peace").unwrap().unwrap(), Node::And(items) if items.len() == 3)
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let cases = [
            ("\"unclosed phrase", 1, "never closed"),
            ("(kerry OR lavrov", 1, "never closed"),
            ("kerry)", 6, "no matching"),
            ("colour:red", 1, "unknown field \"colour\""),
            ("kerry OR", 9, "ends where a word"),
            ("AND kerry", 1, "need a word on each side"),
            ("a*b", 1, "may only end"),
            ("k*", 1, "at least 2"),
            ("headline:", 10, "must be followed"),
            ("headline:(body:x)", 11, "inside another field"),
        ];
        for (query, at, fragment) in cases {
            let err = parse(query).unwrap_err();
            assert_eq!(err.at, at, "{query}: {err}");
            assert!(err.message.contains(fragment), "{query}: {err}");
        }
    }

    #[test]
    fn limits_hold() {
        let many = ["w"; MAX_TERMS + 1].join(" ");
        assert!(parse(&many).unwrap_err().message.contains("more than"));
        let prefixes = ["ab*"; MAX_PREFIXES + 1].join(" ");
        assert!(parse(&prefixes).unwrap_err().message.contains("prefix"));
        let deep = format!(
            "{}x{}",
            "(".repeat(MAX_DEPTH + 2),
            ")".repeat(MAX_DEPTH + 2)
        );
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let nots = format!("{}x", "NOT ".repeat(MAX_DEPTH + 2));
        assert!(parse(&nots).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn garbage_never_panics() {
        for query in [
            "(", ")", "\"", "-", "+", "*", ":", "a:", ":a", "((((", "NOT", "- -", "\"\"", "é*",
            "日本:", "a:b:c",
        ] {
            let _ = parse(query);
        }
    }
}
