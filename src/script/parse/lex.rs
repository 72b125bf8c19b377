//! The lexer: a script's text as tokens with their line and column
//! (packetdrill's `lexer.l`), newlines kept since one line is one event.

use super::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(String),
    Ident(String),
    Str(String),
    Punct(char),
    Ellipsis,
    /// `` `command` ``, its text.
    Shell(String),
    /// `%{ code }%`
    Code,
    Newline,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
    pub(super) col: usize,
    /// Column just past the token (on its first line), to see what touches what.
    pub(super) end: usize,
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let err = |line, col, msg: String| ParseError { line, col, msg };
    while i < chars.len() {
        let c = chars[i];
        let at = |n: usize| chars.get(i + n).copied();
        let (l0, c0) = (line, col);
        let push = |out: &mut Vec<Token>, tok, end| {
            out.push(Token {
                tok,
                line: l0,
                col: c0,
                end,
            })
        };
        match c {
            '\n' => {
                push(&mut out, Tok::Newline, col + 1);
                i += 1;
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => {
                i += 1;
                col += 1;
            }
            '/' if at(1) == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(1) == Some('*') => {
                i += 2;
                col += 2;
                loop {
                    match chars.get(i) {
                        None => return Err(err(l0, c0, "unterminated /* comment".into())),
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            col += 2;
                            break;
                        }
                        Some('\n') => {
                            // Keep the line structure: a comment ends the line it is on.
                            out.push(Token {
                                tok: Tok::Newline,
                                line,
                                col,
                                end: col + 1,
                            });
                            line += 1;
                            col = 1;
                            i += 1;
                        }
                        Some(_) => {
                            i += 1;
                            col += 1;
                        }
                    }
                }
            }
            '`' | '%' => {
                let (close, tok): (&[char], Tok) = if c == '`' {
                    (&['`'], Tok::Shell(String::new()))
                } else if at(1) == Some('{') {
                    (&['}', '%'], Tok::Code)
                } else {
                    return Err(err(
                        line,
                        col,
                        "unexpected '%' (code blocks are written %{ ... }%)".into(),
                    ));
                };
                i += if c == '`' { 1 } else { 2 };
                col += if c == '`' { 1 } else { 2 };
                let body = i;
                loop {
                    if i >= chars.len() {
                        return Err(err(
                            l0,
                            c0,
                            "unterminated shell command or code block".into(),
                        ));
                    }
                    if chars[i..].starts_with(close) {
                        i += close.len();
                        col += close.len();
                        break;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                        col = 1;
                    } else {
                        col += 1;
                    }
                    i += 1;
                }
                let tok = match tok {
                    Tok::Shell(_) => Tok::Shell(chars[body..i - 1].iter().collect()),
                    t => t,
                };
                // The lines a block spans count as the one line it starts on.
                push(&mut out, tok, col);
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                col += 1;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => return Err(err(l0, c0, "unterminated string".into())),
                        Some('"') => {
                            i += 1;
                            col += 1;
                            break;
                        }
                        // An escape, but not of the line's end: a string
                        // stays on its line (the line count would drift).
                        Some('\\') if i + 1 < chars.len() && chars[i + 1] != '\n' => {
                            s.push(chars[i + 1]);
                            i += 2;
                            col += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                            col += 1;
                        }
                    }
                }
                push(&mut out, Tok::Str(s), col);
            }
            '.' if at(1) == Some('.') && at(2) == Some('.') => {
                i += 3;
                col += 3;
                push(&mut out, Tok::Ellipsis, col);
            }
            c if c.is_ascii_digit() || (c == '.' && at(1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                if c == '0' && matches!(at(1), Some('x' | 'X')) {
                    i += 2;
                    while i < chars.len() && chars[i].is_ascii_hexdigit() {
                        i += 1;
                    }
                } else {
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i < chars.len()
                        && chars[i] == '.'
                        && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                    {
                        i += 1;
                        while i < chars.len() && chars[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                col += i - start;
                push(&mut out, Tok::Num(chars[start..i].iter().collect()), col);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                col += i - start;
                push(&mut out, Tok::Ident(chars[start..i].iter().collect()), col);
            }
            '+' | '-' | '~' | '*' | '<' | '>' | '.' | ':' | '(' | ')' | ',' | '[' | ']' | '{'
            | '}' | '=' | '|' | '&' | ';' => {
                i += 1;
                col += 1;
                push(&mut out, Tok::Punct(c), col);
            }
            c => return Err(err(line, col, format!("unexpected character '{c}'"))),
        }
    }
    Ok(out)
}
