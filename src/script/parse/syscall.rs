//! A system call line: the call, its arguments as expressions (numbers,
//! names, strings, `{field=value}` structs, `[list]`s, `htons(N)`), and the
//! expected return value and errno.

use super::lex::{Tok, Token};
use super::{Call, Expr, ParseError, Parser, Syscall};

/// Arguments nested in arguments: packetdrill's deepest (a struct in a list)
/// is three.
const MAX_DEPTH: u32 = 32;

impl Parser<'_> {
    pub(super) fn syscall(&mut self) -> Result<Syscall, ParseError> {
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

    /// An argument: a value, or values joined by `|`. Nested at most
    /// [`MAX_DEPTH`] deep.
    fn expr(&mut self) -> Result<Expr, ParseError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error(format!("arguments nested more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let e = self.or_expr();
        self.depth -= 1;
        e
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
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
    use super::super::*;
    use crate::script::sysctl::Sysctl;

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
            crate::script::stack::sockaddr_in(c.args.get(1)),
            Some(([192, 168, 0, 1], 40_001))
        );
        // Printed back as written, for recordings.
        assert_eq!(
            c.args[1].to_string(),
            "{sa_family=AF_INET, sin_port=htons(40001), sin_addr=inet_addr(\"192.168.0.1\")}"
        );
    }
}
