//! The teardown subset of packetdrill's script language: a lexer and a
//! recursive-descent parser, one event per line (packetdrill's `lexer.l` and
//! `parser.y` are the reference for the syntax; see `docs/scripts.md`).
//!
//! `lex` makes the tokens, this module holds the line grammar (options,
//! times, which event a line is), `packet` and `syscall` the two kinds of
//! event, and `ast` what they parse to.

mod ast;
mod lex;
mod packet;
mod syscall;

use std::fmt;

pub use ast::{
    Call, Direction, Event, EventKind, Expr, PacketSpec, Script, Syscall, TcpOptions, When,
};
use lex::{lex, Tok, Token};

use super::sysctl;

/// A syntax error, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// packetdrill's bound on `--tcp_ts_tick_usecs` (config.c).
const MAX_TS_TICK_USECS: u64 = 1_000_000;

/// Parses a whole script.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let tokens = lex(src)?;
    let mut script = Script::default();
    for line in tokens.split(|t| t.tok == Tok::Newline) {
        if line.is_empty() {
            continue;
        }
        let mut p = Parser {
            toks: line,
            pos: 0,
            depth: 0,
        };
        if p.is_punct('-') && p.peek_at(1).is_some_and(|t| t.tok == Tok::Punct('-')) {
            p.option(&mut script)?;
            continue;
        }
        let lineno = line[0].line;
        // A code block checks the socket's state afterwards in Python:
        // skipped, with a notice.
        if line.iter().any(|t| t.tok == Tok::Code) {
            script.notices.push(format!(
                "line {lineno}: code block ignored (the runner has no Python)"
            ));
            continue;
        }
        // A shell command may stand alone or follow a time; it may only set
        // the sysctls both stacks apply (see `sysctl`).
        let when = if matches!(p.peek().map(|t| &t.tok), Some(Tok::Shell(_))) {
            When::At {
                relative: true,
                start: 0,
                end: None,
            }
        } else {
            p.when()?
        };
        if let Some(Token {
            tok: Tok::Shell(cmd),
            line,
            col,
            ..
        }) = p.peek()
        {
            let settings = sysctl::from_shell(cmd).map_err(|msg| ParseError {
                line: *line,
                col: *col,
                msg,
            })?;
            p.pos += 1;
            p.end()?;
            script.events.push(Event {
                line: lineno,
                when,
                kind: EventKind::Sysctl(settings),
            });
            continue;
        }
        let kind = p.event()?;
        p.end()?;
        script.events.push(Event {
            line: lineno,
            when,
            kind,
        });
    }
    Ok(script)
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    /// Arguments open around the one being parsed (lists, structs, calls):
    /// bounded, so that a line of nested brackets is an error, not a stack
    /// overflow.
    depth: u32,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&'a Token> {
        self.toks.get(self.pos + n)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek().is_some_and(|t| t.tok == Tok::Punct(c))
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(i), .. }) if i == s)
    }

    /// An error at the current token (or just past the last one).
    fn error(&self, msg: impl Into<String>) -> ParseError {
        let (line, col) = match self.peek() {
            Some(t) => (t.line, t.col),
            None => self.toks.last().map_or((1, 1), |t| (t.line, t.end)),
        };
        ParseError {
            line,
            col,
            msg: msg.into(),
        }
    }

    fn describe(&self) -> String {
        match self.peek().map(|t| &t.tok) {
            None | Some(Tok::Newline) => "end of line".into(),
            Some(Tok::Num(n)) => format!("'{n}'"),
            Some(Tok::Ident(s)) => format!("'{s}'"),
            Some(Tok::Str(s)) => format!("\"{s}\""),
            Some(Tok::Punct(c)) => format!("'{c}'"),
            Some(Tok::Ellipsis) => "'...'".into(),
            Some(Tok::Shell(_)) => "a shell command".into(),
            Some(Tok::Code) => "a code block".into(),
        }
    }

    fn expect_punct(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.error(format!("expected '{c}' {what}, found {}", self.describe())))
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(format!("unexpected {} at end of event", self.describe()))),
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.error(format!("expected {what}, found {}", self.describe()))),
        }
    }

    /// An unsigned integer no larger than `max`.
    fn uint(&mut self, what: &str, max: u64) -> Result<u64, ParseError> {
        let err = self.error(format!("expected {what}, found {}", self.describe()));
        let Some(Token {
            tok: Tok::Num(n), ..
        }) = self.peek()
        else {
            return Err(err);
        };
        let v = match n.strip_prefix("0x").or_else(|| n.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => n.parse::<u64>().ok(),
        };
        match v {
            Some(v) if v <= max => {
                self.pos += 1;
                Ok(v)
            }
            Some(_) => Err(self.error(format!("{what} {n} is out of range (at most {max})"))),
            None => Err(err),
        }
    }

    /// Seconds with up to six decimals, as microseconds.
    fn seconds(&mut self) -> Result<u64, ParseError> {
        let err = self.error(format!(
            "expected a time in seconds, found {}",
            self.describe()
        ));
        let Some(Token {
            tok: Tok::Num(n), ..
        }) = self.peek()
        else {
            return Err(err);
        };
        let (int, frac) = n.split_once('.').unwrap_or((n, ""));
        if frac.len() > 6 || n.starts_with("0x") {
            return Err(self.error(format!(
                "'{n}' is not a time with at most microsecond precision"
            )));
        }
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| err.clone())?
        };
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().map_err(|_| err.clone())?
        };
        let us = int
            .checked_mul(1_000_000)
            .and_then(|v| v.checked_add(frac))
            .filter(|&v| v < 1 << 53)
            .ok_or_else(|| self.error(format!("time '{n}' is too large")))?;
        self.pos += 1;
        Ok(us)
    }

    /// `--name=value` at the top of a script (packetdrill command-line options).
    fn option(&mut self, script: &mut Script) -> Result<(), ParseError> {
        let line = self.peek().map_or(0, |t| t.line);
        self.pos += 2;
        let name = self.ident("an option name")?;
        if name == "tolerance_usecs" {
            self.expect_punct('=', "after the option name")?;
            script.tolerance_usecs =
                Some(self.uint("a tolerance in microseconds", u32::MAX as u64)?);
            return self.end();
        }
        if name == "tcp_ts_tick_usecs" {
            self.expect_punct('=', "after the option name")?;
            // Which ticks a stack runs is the stack's to say (the kernel's
            // are 1000 and 1).
            let tick = self.uint("microseconds per timestamp tick", MAX_TS_TICK_USECS)?;
            script.ts_tick_usecs = (tick > 0).then_some(tick);
            script.setup_line = line;
            return self.end();
        }
        if name == "bind_port" {
            self.expect_punct('=', "after the option name")?;
            if self.uint("a port", u16::MAX as u64)? != 0 {
                return Err(ParseError {
                    line,
                    col: 1,
                    msg: "--bind_port: only 0 is supported (the stack chooses the port); the \
                          script's ports are fixed (docs/scripts.md)"
                        .into(),
                });
            }
            script.bind_port_zero = true;
            script.setup_line = line;
            return self.end();
        }
        if name == "tolerance_percent" {
            self.expect_punct('=', "after the option name")?;
            // A decimal with up to six places, read as seconds are.
            let millionths = self.seconds()?;
            script.tolerance_percent = Some(millionths as f64 / 1e6);
            return self.end();
        }
        script
            .notices
            .push(format!("line {line}: option --{name} ignored"));
        self.pos = self.toks.len();
        Ok(())
    }

    fn when(&mut self) -> Result<When, ParseError> {
        if self.eat_punct('*') {
            return Ok(When::Any);
        }
        let relative = self.eat_punct('+');
        let start = self.seconds()?;
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Ellipsis,
                ..
            })
        ) {
            return Err(self.error("blocking system calls ('a...b' times) are not supported"));
        }
        let end = if self.eat_punct('~') {
            let rel_end = self.eat_punct('+');
            if rel_end != relative {
                return Err(
                    self.error("both ends of a time range must be absolute, or both relative")
                );
            }
            let end = self.seconds()?;
            if end < start {
                return Err(self.error("a time range must not end before it starts"));
            }
            Some(end)
        } else {
            None
        };
        Ok(When::At {
            relative,
            start,
            end,
        })
    }

    fn event(&mut self) -> Result<EventKind, ParseError> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Punct('<')) => {
                self.pos += 1;
                self.packet(Direction::Inbound).map(EventKind::Packet)
            }
            Some(Tok::Punct('>')) => {
                self.pos += 1;
                self.packet(Direction::Outbound).map(EventKind::Packet)
            }
            Some(Tok::Ident(_)) if self.peek_at(1).is_some_and(|t| t.tok == Tok::Punct('(')) => {
                self.syscall().map(EventKind::Syscall)
            }
            _ => Err(self.error(format!(
                "expected a packet ('<' or '>') or a system call, found {}",
                self.describe()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one event `src` parses to.
    pub(super) fn one(src: &str) -> Event {
        let s = parse(src).unwrap();
        assert_eq!(s.events.len(), 1, "{:?}", s.events);
        s.events[0].clone()
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0)\n").unwrap_err();
        assert_eq!(
            (e.line, e.msg.contains("window must be specified")),
            (2, true)
        );
        let e = parse("0 < S 0:5(0) win 1\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 11));
        let e = parse("+0 > SX 0:0(0)\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 7));
        let e = parse("+0 poll(3) = 0\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 4));
        let e = parse("+0 > S 0:0(0) <md5 x>\n").unwrap_err();
        assert!(e.msg.contains("md5"), "{e}");
        let e = parse("--tcp_ts_tick_usecs=1000001\n0 close(3) = 0\n").unwrap_err();
        assert!(e.msg.contains("out of range"), "{e}");
        let e = parse("--bind_port=8080\n0 close(3) = 0\n").unwrap_err();
        assert!(e.msg.contains("only 0"), "{e}");
        let e = parse("0...0.1 accept(3, ..., ...) = 4\n").unwrap_err();
        assert!(e.msg.contains("blocking"), "{e}");
        assert!(parse("0 close(3) = 0 $").is_err());
        assert!(parse("+0 > . 1:1(0)\n").unwrap_err().msg.contains("ack N"));
    }
}
