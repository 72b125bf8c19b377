//! A packet line's segment: flags, sequence range, ack, window and the TCP
//! options between `<` and `>`.

use teardown_engine::segment::{Flags, Ts, MAX_LEN};

use super::lex::{Tok, Token};
use super::{Direction, PacketSpec, ParseError, Parser, TcpOptions};

impl Parser<'_> {
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

    pub(super) fn packet(&mut self, dir: Direction) -> Result<PacketSpec, ParseError> {
        let flags = self.flags()?;
        let start = self.uint("a start sequence number", u32::MAX as u64)?;
        self.expect_punct(':', "in start:end(length)")?;
        let end = self.uint("an end sequence number", u32::MAX as u64)?;
        self.expect_punct('(', "in start:end(length)")?;
        let len = self.uint("a payload length", u64::from(MAX_LEN))?;
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::one;
    use super::super::*;
    use teardown_engine::segment::{Flags, Ts};

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
}
