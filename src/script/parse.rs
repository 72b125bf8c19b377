//! The teardown subset of packetdrill's script language: a lexer and a
//! recursive-descent parser, one event per line (packetdrill's `lexer.l` and
//! `parser.y` are the reference for the syntax; see `docs/scripts.md`).

use std::fmt;

use super::sysctl::{self, Sysctl};
use teardown_engine::segment::{Flags, Ts};

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

/// A parsed script.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub events: Vec<Event>,
    /// `--tolerance_usecs=N` given in the script itself.
    pub tolerance_usecs: Option<u64>,
    /// `--tolerance_percent=P` given in the script itself.
    pub tolerance_percent: Option<f64>,
    /// `--tcp_ts_tick_usecs=N`: microseconds per TSval tick; the local
    /// host's clock runs at it and outbound TSvals are checked only when it
    /// is given, as packetdrill does.
    pub ts_tick_usecs: Option<u64>,
    /// `--bind_port=0` (packetdrill's option): `bind()` binds port 0, so the
    /// stack chooses the port at bind() (`inet_csk_find_open_port`), or at
    /// connect() after `IP_BIND_ADDRESS_NO_PORT`.
    pub bind_port_zero: bool,
    /// The line of the last of those two options, where a stack that cannot
    /// run them fails.
    pub setup_line: usize,
    /// Things parsed and ignored (options, shell commands, code blocks), for stderr.
    pub notices: Vec<String>,
}

/// One line of the script: when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub line: usize,
    pub when: When,
    pub kind: EventKind,
}

/// The time column, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `*`: any time.
    Any,
    /// `t`, `+t`, `a~b` or `+a~+b`.
    At {
        relative: bool,
        start: u64,
        end: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `<`: injected into the host.
    Inbound,
    /// `>`: expected from the host.
    Outbound,
}

/// A packet line: `< S. 0:0(0) ack 1 win 65535 <mss 1460>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketSpec {
    pub dir: Direction,
    pub flags: Flags,
    pub seq: u32,
    pub len: u32,
    pub ack: Option<u32>,
    pub win: Option<u16>,
    pub options: TcpOptions,
}

/// TCP options as written. The engine has none; they are parsed so that Linux
/// scripts read, and the few that matter to the runner are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// `<...>`: packetdrill's "don't check the options".
    pub unchecked: bool,
    pub mss: Option<u16>,
    pub sack_ok: bool,
    /// `TS val X ecr Y`, as written (script time: the runner maps them).
    pub ts: Option<Ts>,
    pub wscale: Option<u8>,
}

/// The system calls the runner models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Socket,
    Bind,
    Listen,
    Accept,
    Connect,
    Close,
    Shutdown,
    Setsockopt,
    /// Not in packetdrill: checks the port a stack chose (see docs/scripts.md).
    Getsockname,
    Fcntl,
    Write,
    Read,
}

impl Call {
    fn from_name(s: &str) -> Option<Call> {
        Some(match s {
            "socket" => Call::Socket,
            "bind" => Call::Bind,
            "listen" => Call::Listen,
            "accept" | "accept4" => Call::Accept,
            "connect" => Call::Connect,
            "close" => Call::Close,
            "shutdown" => Call::Shutdown,
            "setsockopt" => Call::Setsockopt,
            "getsockname" => Call::Getsockname,
            "fcntl" => Call::Fcntl,
            "write" | "send" => Call::Write,
            "read" | "recv" => Call::Read,
            _ => return None,
        })
    }
}

/// An argument of a system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `...`
    Ellipsis,
    Int(i64),
    Name(String),
    Str(String),
    /// `O_RDWR|O_NONBLOCK`
    Or(Vec<Expr>),
    /// `[1]`
    List(Vec<Expr>),
    /// `{onoff=1, linger=0}`
    Struct(Vec<(String, Expr)>),
    /// `htons(8080)`, `inet_addr("192.168.0.1")`: packetdrill's sockaddr fields.
    Call(String, Vec<Expr>),
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: &[Expr], sep: &str| {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        };
        match self {
            Expr::Ellipsis => f.write_str("..."),
            Expr::Int(v) => write!(f, "{v}"),
            Expr::Name(n) => f.write_str(n),
            Expr::Str(s) => write!(f, "{s:?}"),
            Expr::Or(items) => list(f, items, "|"),
            Expr::List(items) => {
                f.write_str("[")?;
                list(f, items, ", ")?;
                f.write_str("]")
            }
            Expr::Call(name, args) => {
                write!(f, "{name}(")?;
                list(f, args, ", ")?;
                f.write_str(")")
            }
            Expr::Struct(fields) => {
                f.write_str("{")?;
                for (i, (n, v)) in fields.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    write!(f, "{sep}{n}={v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// A system call line: `+0 close(4) = 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    pub call: Call,
    pub name: String,
    pub args: Vec<Expr>,
    pub ret: i64,
    /// `ECONNRESET` in `= -1 ECONNRESET (Connection reset by peer)`.
    pub errno: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Packet(PacketSpec),
    Syscall(Syscall),
    /// A shell line setting sysctls, applied before the script starts.
    Sysctl(Vec<Sysctl>),
}

// ---- lexer ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
struct Token {
    tok: Tok,
    line: usize,
    col: usize,
    /// Column just past the token (on its first line), to see what touches what.
    end: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
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
                        Some('\\') if i + 1 < chars.len() => {
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

// ---- parser -----------------------------------------------------------------

/// Parses a whole script.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let tokens = lex(src)?;
    let mut script = Script::default();
    for line in tokens.split(|t| t.tok == Tok::Newline) {
        if line.is_empty() {
            continue;
        }
        let mut p = Parser { toks: line, pos: 0 };
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

    /// Flags as one word of `S F R P .` characters, such as `S.` or `F.`.
    fn flags(&mut self) -> Result<Flags, ParseError> {
        let first = self
            .peek()
            .ok_or_else(|| self.error("expected TCP flags"))?;
        let mut word = String::new();
        let mut end = first.col;
        while let Some(t) = self.peek() {
            if t.col != end && !word.is_empty() {
                break;
            }
            match &t.tok {
                Tok::Ident(s) => word.push_str(s),
                Tok::Punct('.') => word.push('.'),
                _ => break,
            }
            end = t.end;
            self.pos += 1;
        }
        if word.is_empty() {
            return Err(self.error(format!(
                "expected TCP flags (S F R P .), found {}",
                self.describe()
            )));
        }
        let mut flags = Flags::NONE;
        for (i, c) in word.chars().enumerate() {
            let f = match c {
                'S' => Flags::SYN,
                'F' => Flags::FIN,
                'R' => Flags::RST,
                'P' => Flags::PSH,
                '.' => Flags::ACK,
                'E' | 'W' | 'U' => {
                    return Err(ParseError {
                        line: first.line,
                        col: first.col + i,
                        msg: format!("TCP flag '{c}' (ECN/URG) is not supported"),
                    })
                }
                _ => {
                    return Err(ParseError {
                        line: first.line,
                        col: first.col + i,
                        msg: format!("'{c}' is not a TCP flag (expected S F R P or .)"),
                    })
                }
            };
            flags = flags | f;
        }
        Ok(flags)
    }

    fn packet(&mut self, dir: Direction) -> Result<PacketSpec, ParseError> {
        let flags = self.flags()?;
        let start = self.uint("a start sequence number", u32::MAX as u64)?;
        self.expect_punct(':', "in start:end(length)")?;
        let end = self.uint("an end sequence number", u32::MAX as u64)?;
        self.expect_punct('(', "in start:end(length)")?;
        let len = self.uint("a payload length", u32::MAX as u64)?;
        let len_at = self.pos - 1;
        self.expect_punct(')', "in start:end(length)")?;
        if (end as u32).wrapping_sub(start as u32) != len as u32 {
            let t = &self.toks[len_at];
            return Err(ParseError {
                line: t.line,
                col: t.col,
                msg: format!("inconsistent sequence range {start}:{end}({len}): end - start must equal the length"),
            });
        }
        let mut spec = PacketSpec {
            dir,
            flags,
            seq: start as u32,
            len: len as u32,
            ack: None,
            win: None,
            options: TcpOptions::default(),
        };
        while self.peek().is_some() {
            if self.is_ident("ack") {
                self.pos += 1;
                spec.ack = Some(self.uint("an ACK number", u32::MAX as u64)? as u32);
            } else if self.is_ident("win") {
                self.pos += 1;
                spec.win = Some(self.uint("a window", u16::MAX as u64)? as u16);
            } else if self.is_punct('<') {
                self.pos += 1;
                spec.options = self.tcp_options()?;
            } else {
                return Err(self.error(format!(
                    "expected 'ack', 'win' or '<options>', found {}",
                    self.describe()
                )));
            }
        }
        if spec.flags.ack() && spec.ack.is_none() {
            return Err(self.error("a packet with the ACK flag ('.') needs 'ack N'"));
        }
        if dir == Direction::Inbound && spec.win.is_none() {
            return Err(self.error("window must be specified for inbound packets ('win N')"));
        }
        Ok(spec)
    }

    /// `<mss 1460,sackOK,nop,nop,TS val 100 ecr 0,nop,wscale 7>` or `<...>`.
    fn tcp_options(&mut self) -> Result<TcpOptions, ParseError> {
        let mut o = TcpOptions::default();
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Ellipsis,
                ..
            })
        ) {
            self.pos += 1;
            o.unchecked = true;
            self.expect_punct('>', "to close the TCP options")?;
            return Ok(o);
        }
        loop {
            let name = self.ident("a TCP option")?;
            match name.as_str() {
                "mss" => o.mss = Some(self.uint("an MSS", u16::MAX as u64)? as u16),
                "sackOK" => o.sack_ok = true,
                "nop" | "eol" => {}
                "wscale" => o.wscale = Some(self.uint("a window scale", 14)? as u8),
                "TS" => {
                    let mut v = [0u32; 2];
                    for (field, v) in ["val", "ecr"].into_iter().zip(&mut v) {
                        if !self.is_ident(field) {
                            return Err(self.error(format!("expected '{field}' in the TS option")));
                        }
                        self.pos += 1;
                        *v = self.uint("a timestamp", u32::MAX as u64)? as u32;
                    }
                    o.ts = Some(Ts {
                        val: v[0],
                        ecr: v[1],
                    });
                }
                "sack" => {
                    while matches!(
                        self.peek(),
                        Some(Token {
                            tok: Tok::Num(_),
                            ..
                        })
                    ) {
                        self.uint("a SACK block start", u32::MAX as u64)?;
                        self.expect_punct(':', "in a SACK block")?;
                        self.uint("a SACK block end", u32::MAX as u64)?;
                    }
                }
                other => {
                    self.pos -= 1;
                    return Err(self.error(format!("TCP option '{other}' is not supported")));
                }
            }
            if self.eat_punct('>') {
                return Ok(o);
            }
            self.expect_punct(',', "between TCP options")?;
        }
    }

    fn syscall(&mut self) -> Result<Syscall, ParseError> {
        let at = self.pos;
        let name = self.ident("a system call")?;
        let Some(call) = Call::from_name(&name) else {
            self.pos = at;
            return Err(self.error(format!(
                "system call '{name}' is not supported (socket, bind, listen, accept, connect, \
                 close, shutdown, setsockopt, getsockname, fcntl, write, read)"
            )));
        };
        self.expect_punct('(', "after the system call name")?;
        let mut args = Vec::new();
        if !self.eat_punct(')') {
            loop {
                args.push(self.expr()?);
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',', "between arguments")?;
            }
        }
        self.expect_punct('=', "before the return value")?;
        let neg = self.eat_punct('-');
        let v = self.uint("a return value", i64::MAX as u64)? as i64;
        let ret = if neg { -v } else { v };
        let errno = match self.peek() {
            Some(Token {
                tok: Tok::Ident(e), ..
            }) => {
                self.pos += 1;
                if self.eat_punct('(') {
                    // The errno's text: `(Connection reset by peer)`.
                    while !self.eat_punct(')') {
                        if self.next().is_none() {
                            return Err(self.error("expected ')' after the errno text"));
                        }
                    }
                }
                Some(e.clone())
            }
            _ => None,
        };
        Ok(Syscall {
            call,
            name,
            args,
            ret,
            errno,
        })
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.primary()?;
        if !self.is_punct('|') {
            return Ok(first);
        }
        let mut all = vec![first];
        while self.eat_punct('|') {
            all.push(self.primary()?);
        }
        Ok(Expr::Or(all))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let Some(t) = self.peek() else {
            return Err(self.error("expected an argument"));
        };
        match &t.tok {
            Tok::Ellipsis => {
                self.pos += 1;
                Ok(Expr::Ellipsis)
            }
            Tok::Num(_) => Ok(Expr::Int(self.uint("a number", i64::MAX as u64)? as i64)),
            Tok::Punct('-') => {
                self.pos += 1;
                Ok(Expr::Int(-(self.uint("a number", i64::MAX as u64)? as i64)))
            }
            Tok::Ident(s) if self.peek_at(1).is_some_and(|t| t.tok == Tok::Punct('(')) => {
                self.pos += 2;
                let mut args = Vec::new();
                while !self.eat_punct(')') {
                    if !args.is_empty() {
                        self.expect_punct(',', "between arguments")?;
                    }
                    args.push(self.expr()?);
                }
                Ok(Expr::Call(s.clone(), args))
            }
            Tok::Ident(s) => {
                self.pos += 1;
                Ok(Expr::Name(s.clone()))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Str(s.clone()))
            }
            Tok::Punct('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat_punct(']') {
                    loop {
                        items.push(self.expr()?);
                        if self.eat_punct(']') {
                            break;
                        }
                        self.expect_punct(',', "between list items")?;
                    }
                }
                Ok(Expr::List(items))
            }
            Tok::Punct('{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                if !self.eat_punct('}') {
                    loop {
                        if matches!(
                            self.peek(),
                            Some(Token {
                                tok: Tok::Ellipsis,
                                ..
                            })
                        ) {
                            self.pos += 1;
                        } else {
                            let name = self.ident("a field name")?;
                            self.expect_punct('=', "after the field name")?;
                            fields.push((name, self.expr()?));
                        }
                        if self.eat_punct('}') {
                            break;
                        }
                        self.expect_punct(',', "between fields")?;
                    }
                }
                Ok(Expr::Struct(fields))
            }
            _ => Err(self.error(format!("expected an argument, found {}", self.describe()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Event {
        let s = parse(src).unwrap();
        assert_eq!(s.events.len(), 1, "{:?}", s.events);
        s.events[0].clone()
    }

    #[test]
    fn packets() {
        let e =
            one("+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>\n");
        assert_eq!(
            e.when,
            When::At {
                relative: true,
                start: 100_000,
                end: None
            }
        );
        let EventKind::Packet(p) = e.kind else {
            panic!()
        };
        assert_eq!(p.flags, Flags::SYN | Flags::ACK);
        assert_eq!((p.seq, p.len, p.ack, p.win), (0, 0, Some(1), Some(65_535)));
        assert_eq!(p.options.mss, Some(1460));
        assert!(p.options.sack_ok);
        assert_eq!(p.options.ts, Some(Ts { val: 1, ecr: 0 }));
        let e = one("0.300~0.340 > F. 1:1(0) ack 1 <...>");
        assert_eq!(
            e.when,
            When::At {
                relative: false,
                start: 300_000,
                end: Some(340_000)
            }
        );
        let EventKind::Packet(p) = e.kind else {
            panic!()
        };
        assert!(p.options.unchecked);
        let e = one("* > P. 1:1001(1000) ack 1");
        assert_eq!(e.when, When::Any);
    }

    #[test]
    fn syscalls_comments_and_ignored_lines() {
        let s = parse(
            "// a comment\n0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 /* inline */\n\
             +0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n\
             +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n\
             +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n\
             +0 `sysctl -q net.ipv4.tcp_rfc1337=0`\n\
             +0 %{ assert tcpi_rto == 300000 }%\n--tolerance_usecs=10000\n",
        )
        .unwrap();
        assert_eq!(s.events.len(), 5);
        assert_eq!(s.tolerance_usecs, Some(10_000));
        let pct = parse("--tolerance_percent=2.5\n0 close(3) = 0\n").unwrap();
        assert_eq!(pct.tolerance_percent, Some(2.5));
        assert_eq!(s.notices.len(), 1);
        assert_eq!(
            s.events[4].kind,
            EventKind::Sysctl(vec![Sysctl::Rfc1337(false)])
        );
        let e = parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 `../common/defaults.sh`\n")
            .unwrap_err();
        assert_eq!((e.line, e.col), (2, 4));
        assert!(e.msg.contains("`../common/defaults.sh` is not run"), "{e}");
        let EventKind::Syscall(c) = &s.events[1].kind else {
            panic!()
        };
        assert_eq!(c.call, Call::Setsockopt);
        assert_eq!(
            c.args[3],
            Expr::Struct(vec![
                ("onoff".into(), Expr::Int(1)),
                ("linger".into(), Expr::Int(0))
            ])
        );
        let EventKind::Syscall(c) = &s.events[3].kind else {
            panic!()
        };
        assert_eq!((c.ret, c.errno.as_deref()), (-1, Some("EINPROGRESS")));
        assert_eq!(s.events[3].line, 5);
    }

    #[test]
    fn bind_port_zero_and_a_sockaddr() {
        let s = parse(
            "--bind_port=0\n--tcp_ts_tick_usecs=1\n0 getsockname(3, {sa_family=AF_INET, \
             sin_port=htons(40001), sin_addr=inet_addr(\"192.168.0.1\")}, [16]) = 0\n",
        )
        .unwrap();
        assert!(s.bind_port_zero);
        assert_eq!((s.ts_tick_usecs, s.setup_line), (Some(1), 2));
        let EventKind::Syscall(c) = &s.events[0].kind else {
            panic!()
        };
        assert_eq!(c.call, Call::Getsockname);
        assert_eq!(
            super::super::stack::sockaddr_in(c.args.get(1)),
            Some(([192, 168, 0, 1], 40_001))
        );
        // Printed back as written, for recordings.
        assert_eq!(
            c.args[1].to_string(),
            "{sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr(\"192.168.0.1\")}"
        );
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
