//! The lexer: PTX text to tokens, each with its 1-based line.
//!
//! It exists so that the parser never deals with characters, comments or
//! line counting. Comments (`//`, `/* */`) are dropped here. Words keep
//! their dots (`ld.global.nc.v2.f64`, `%tid.x`) and `::` scopes
//! (`shared::cta`); the parser splits them.

use super::PtxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An identifier, register, opcode or directive (`.reg`, `%r1`, `add.s32`).
    Word,
    /// A number as written (`12`, `0x1F`, `0f3F800000`, `8.2`, `1U`).
    Num,
    /// A double-quoted string, quotes included.
    Str,
    /// One punctuation character.
    Punct(u8),
}

#[derive(Debug, Clone, Copy)]
pub struct Tok<'a> {
    pub kind: Kind,
    pub text: &'a str,
    pub line: u32,
}

fn word_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c == b'%' || c == b'.'
}

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.'
}

/// Splits `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Tok<'_>>, PtxError> {
    let b = src.as_bytes();
    let mut toks = Vec::with_capacity(src.len() / 4);
    let mut i = 0;
    let mut line: u32 = 1;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            let start_line = line;
            i += 2;
            loop {
                if i + 1 >= b.len() {
                    return Err(PtxError {
                        line: start_line as usize,
                        message: "unterminated /* comment".into(),
                    });
                }
                if b[i] == b'*' && b[i + 1] == b'/' {
                    i += 2;
                    break;
                }
                if b[i] == b'\n' {
                    line += 1;
                }
                i += 1;
            }
            continue;
        }
        let start = i;
        if word_start(c) {
            i += 1;
            while i < b.len() {
                if word_char(b[i]) {
                    i += 1;
                } else if b[i] == b':' && i + 2 < b.len() && b[i + 1] == b':' && word_char(b[i + 2])
                {
                    i += 2;
                } else {
                    break;
                }
            }
            toks.push(Tok {
                kind: Kind::Word,
                text: &src[start..i],
                line,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let hexish = c == b'0'
                && i + 1 < b.len()
                && matches!(b[i + 1], b'x' | b'X' | b'f' | b'F' | b'd' | b'D');
            i += 1;
            while i < b.len() {
                let d = b[i];
                let exp_sign =
                    (d == b'+' || d == b'-') && !hexish && matches!(b[i - 1], b'e' | b'E');
                if d.is_ascii_alphanumeric() || d == b'.' || d == b'_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            toks.push(Tok {
                kind: Kind::Num,
                text: &src[start..i],
                line,
            });
            continue;
        }
        if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\n' {
                    return Err(PtxError {
                        line: line as usize,
                        message: "unterminated string".into(),
                    });
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(PtxError {
                    line: line as usize,
                    message: "unterminated string".into(),
                });
            }
            i += 1;
            toks.push(Tok {
                kind: Kind::Str,
                text: &src[start..i],
                line,
            });
            continue;
        }
        if b",;:{}[]()+-|!@<>=*".contains(&c) {
            i += 1;
            toks.push(Tok {
                kind: Kind::Punct(c),
                text: &src[start..i],
                line,
            });
            continue;
        }
        let ch = src[i..].chars().next().unwrap_or('?');
        return Err(PtxError {
            line: line as usize,
            message: format!("unexpected character '{ch}'"),
        });
    }
    Ok(toks)
}

/// The value of an integer literal (decimal, `0x` hex, `0b` binary, octal
/// with a leading 0, optional `U` suffix), as 64 bits.
pub fn parse_int(text: &str) -> Option<u64> {
    let t = text.strip_suffix(['U', 'u']).unwrap_or(text);
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(bn) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        u64::from_str_radix(bn, 2).ok()
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()
    } else {
        t.parse::<u64>().ok()
    }
}

/// A float literal: `0fXXXXXXXX` (f32 bits), `0dXXXXXXXXXXXXXXXX` (f64
/// bits) or a decimal with a point or exponent. Returns the value as f64
/// and whether it was given as exact f32 bits.
pub fn parse_float(text: &str) -> Option<FloatLit> {
    if let Some(h) = text.strip_prefix("0f").or_else(|| text.strip_prefix("0F")) {
        if h.len() != 8 {
            return None;
        }
        return u32::from_str_radix(h, 16).ok().map(FloatLit::F32Bits);
    }
    if let Some(h) = text.strip_prefix("0d").or_else(|| text.strip_prefix("0D")) {
        if h.len() != 16 {
            return None;
        }
        return u64::from_str_radix(h, 16).ok().map(FloatLit::F64Bits);
    }
    if text.contains(['.', 'e', 'E']) && !text.starts_with("0x") {
        return text.parse::<f64>().ok().map(FloatLit::Decimal);
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FloatLit {
    F32Bits(u32),
    F64Bits(u64),
    Decimal(f64),
}
