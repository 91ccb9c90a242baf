//! The parser: tokens to a syntax tree of the module (variables, kernels,
//! their register declarations, labels and raw instructions).
//!
//! It exists to own PTX's statement grammar: directives with and without a
//! terminating `;`, nested `{ }` scopes with their own `.reg`s (inline asm),
//! register ranges `%r<N>`, initialisers, and skipping the DWARF
//! `.section`s. Registers are resolved to indices here, because only here is
//! the scope known; symbols, labels and special registers stay names until
//! `decode`.

use std::collections::HashMap;

use super::lexer::{self, FloatLit, Kind, Tok};
use super::PtxError;

/// A PTX fundamental type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ty {
    B8,
    B16,
    B32,
    B64,
    B128,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    BF16,
    BF16x2,
    F32,
    F64,
    Pred,
}

impl Ty {
    pub fn from_name(s: &str) -> Option<Ty> {
        Some(match s {
            "b8" => Ty::B8,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "b64" => Ty::B64,
            "b128" => Ty::B128,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "s8" => Ty::S8,
            "s16" => Ty::S16,
            "s32" => Ty::S32,
            "s64" => Ty::S64,
            "f16" => Ty::F16,
            "f16x2" => Ty::F16x2,
            "bf16" => Ty::BF16,
            "bf16x2" => Ty::BF16x2,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => return None,
        })
    }

    /// Bytes (a predicate counts 1).
    pub fn size(self) -> u32 {
        match self {
            Ty::B8 | Ty::U8 | Ty::S8 | Ty::Pred => 1,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::BF16 => 2,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::F16x2 | Ty::BF16x2 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 8,
            Ty::B128 => 16,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(
            self,
            Ty::F16 | Ty::F16x2 | Ty::BF16 | Ty::BF16x2 | Ty::F32 | Ty::F64
        )
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }

    pub fn is_unsigned(self) -> bool {
        matches!(self, Ty::U8 | Ty::U16 | Ty::U32 | Ty::U64)
    }

    pub fn is_bits(self) -> bool {
        matches!(self, Ty::B8 | Ty::B16 | Ty::B32 | Ty::B64 | Ty::B128)
    }

    pub fn name(self) -> &'static str {
        match self {
            Ty::B8 => "b8",
            Ty::B16 => "b16",
            Ty::B32 => "b32",
            Ty::B64 => "b64",
            Ty::B128 => "b128",
            Ty::U8 => "u8",
            Ty::U16 => "u16",
            Ty::U32 => "u32",
            Ty::U64 => "u64",
            Ty::S8 => "s8",
            Ty::S16 => "s16",
            Ty::S32 => "s32",
            Ty::S64 => "s64",
            Ty::F16 => "f16",
            Ty::F16x2 => "f16x2",
            Ty::BF16 => "bf16",
            Ty::BF16x2 => "bf16x2",
            Ty::F32 => "f32",
            Ty::F64 => "f64",
            Ty::Pred => "pred",
        }
    }
}

/// A state space of variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Global,
    Const,
    Shared,
    Local,
}

#[derive(Debug, Clone)]
pub struct VarDecl {
    pub name: String,
    pub space: Space,
    pub align: u32,
    pub size: u64,
    /// `size` bytes, zeros where no initialiser.
    pub init: Vec<u8>,
    pub is_extern: bool,
    pub line: u32,
}

#[derive(Debug, Clone)]
pub struct RegInfo {
    pub ty: Ty,
}

/// The base of an address operand.
#[derive(Debug, Clone, PartialEq)]
pub enum AddrBase {
    Reg(u32),
    Name(String),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Opnd {
    Reg(u32),
    /// A symbol, label or special register (`%tid.x`), or `_`.
    Name(String),
    Int(u64),
    Float(FloatLit),
    Addr(AddrBase, i64),
    Vec(Vec<Opnd>),
    /// `a|b` (setp and shfl's two destinations).
    Pair(Box<Opnd>, Box<Opnd>),
    Not(Box<Opnd>),
}

#[derive(Debug, Clone)]
pub struct RawInst {
    pub line: u32,
    /// The latest `.loc`: file index and source line (0 when none).
    pub loc: (u32, u32),
    pub guard: Option<(u32, bool)>,
    pub opcode: String,
    pub ops: Vec<Opnd>,
}

#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub name: String,
    pub size: u64,
    pub align: u32,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub line: u32,
    pub params: Vec<ParamDecl>,
    pub maxntid: Option<[u32; 3]>,
    pub reqntid: Option<[u32; 3]>,
    pub regs: Vec<RegInfo>,
    pub insts: Vec<RawInst>,
    /// Label name to (instruction index, line).
    pub labels: HashMap<String, (u32, u32)>,
    pub vars: Vec<VarDecl>,
}

#[derive(Debug, Clone, Default)]
pub struct Ast {
    pub vars: Vec<VarDecl>,
    pub funcs: Vec<Function>,
    pub files: HashMap<u32, String>,
}

fn err<T>(line: u32, message: impl Into<String>) -> Result<T, PtxError> {
    Err(PtxError {
        line: line as usize,
        message: message.into(),
    })
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
    last_line: u32,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn line(&self) -> u32 {
        self.peek().map(|t| t.line).unwrap_or(self.last_line)
    }

    fn next(&mut self) -> Result<Tok<'a>, PtxError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(*t)
            }
            None => err(self.last_line, "unexpected end of text"),
        }
    }

    fn is_punct(&self, c: u8) -> bool {
        matches!(self.peek(), Some(t) if t.kind == Kind::Punct(c))
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        if self.is_punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: u8) -> Result<(), PtxError> {
        let t = self.next()?;
        if t.kind == Kind::Punct(c) {
            Ok(())
        } else {
            err(
                t.line,
                format!("expected '{}', found '{}'", c as char, t.text),
            )
        }
    }

    fn word(&mut self) -> Result<Tok<'a>, PtxError> {
        let t = self.next()?;
        if t.kind == Kind::Word {
            Ok(t)
        } else {
            err(t.line, format!("expected a name, found '{}'", t.text))
        }
    }

    fn int(&mut self) -> Result<u64, PtxError> {
        let t = self.next()?;
        if t.kind == Kind::Num {
            if let Some(v) = lexer::parse_int(t.text) {
                return Ok(v);
            }
        }
        err(t.line, format!("expected an integer, found '{}'", t.text))
    }

    /// Skips the rest of the line of token `line` (directives without `;`).
    fn skip_line(&mut self, line: u32) {
        while let Some(t) = self.peek() {
            if t.line != line {
                break;
            }
            self.pos += 1;
        }
    }

    fn skip_to_semicolon(&mut self) -> Result<(), PtxError> {
        loop {
            let t = self.next()?;
            if t.kind == Kind::Punct(b';') {
                return Ok(());
            }
        }
    }

    /// `.section name { ... }`: skipped whole, braces balanced.
    fn skip_section(&mut self) -> Result<(), PtxError> {
        let l = self.line();
        self.word()?;
        if !self.eat_punct(b'{') {
            self.skip_line(l);
            return Ok(());
        }
        let mut depth = 1;
        while depth > 0 {
            let t = self.next()?;
            match t.kind {
                Kind::Punct(b'{') => depth += 1,
                Kind::Punct(b'}') => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// Numbers of a `.maxntid`-like directive: `a[, b[, c]]`.
    fn dims(&mut self) -> Result<[u32; 3], PtxError> {
        let l = self.line();
        let mut d = [1u32; 3];
        for (i, slot) in d.iter_mut().enumerate() {
            if i > 0 && !self.eat_punct(b',') {
                break;
            }
            let v = self.int()?;
            *slot = u32::try_from(v).or_else(|_| err(l, "dimension out of range"))?;
        }
        Ok(d)
    }

    /// A variable declaration after its state space word.
    fn var_decl(&mut self, space: Space, is_extern: bool) -> Result<Vec<VarDecl>, PtxError> {
        let line = self.line();
        let mut align: Option<u32> = None;
        let mut ty: Option<Ty> = None;
        let mut vec = 1u32;
        loop {
            let t = self.word()?;
            match t.text {
                ".align" => {
                    let a = self.int()?;
                    if a == 0 || !a.is_power_of_two() || a > 1 << 16 {
                        return err(t.line, format!("bad alignment {a}"));
                    }
                    align = Some(a as u32);
                }
                ".v2" => vec = 2,
                ".v4" => vec = 4,
                ".v8" => vec = 8,
                ".ptr" | ".global" | ".shared" | ".const" | ".local" => {}
                w if w.starts_with('.') => match Ty::from_name(&w[1..]) {
                    Some(tt) if tt != Ty::Pred => {
                        ty = Some(tt);
                    }
                    _ => return err(t.line, format!("unknown type or attribute '{w}'")),
                },
                _ => {
                    self.pos -= 1;
                    break;
                }
            }
        }
        let Some(ty) = ty else {
            return err(line, "variable without a type");
        };
        let elem = ty.size() as u64 * vec as u64;
        let mut out = Vec::new();
        loop {
            let name = self.word()?;
            let mut count: u64 = 1;
            let mut unsized_ = false;
            while self.eat_punct(b'[') {
                if self.eat_punct(b']') {
                    unsized_ = true;
                    continue;
                }
                let n = self.int()?;
                self.expect_punct(b']')?;
                count = count.saturating_mul(n);
            }
            let size = if unsized_ {
                0
            } else {
                elem.saturating_mul(count)
            };
            if size > 1 << 28 {
                return err(name.line, format!("variable '{}' too large", name.text));
            }
            let mut init = vec![0u8; size as usize];
            if self.eat_punct(b'=') {
                let mut vals = Vec::new();
                self.init_values(&mut vals)?;
                let es = ty.size() as usize;
                if vals.len() * es > init.len() {
                    return err(
                        name.line,
                        format!("too many initialisers for '{}'", name.text),
                    );
                }
                for (i, v) in vals.iter().enumerate() {
                    let bytes = match (*v, ty) {
                        (InitVal::Int(x), Ty::F32) => (x as i64 as f32).to_bits() as u64,
                        (InitVal::Int(x), Ty::F64) => (x as i64 as f64).to_bits(),
                        (InitVal::Int(x), _) => x,
                        (InitVal::Float(f), Ty::F32) => match f {
                            FloatLit::F32Bits(b) => b as u64,
                            FloatLit::F64Bits(b) => (f64::from_bits(b) as f32).to_bits() as u64,
                            FloatLit::Decimal(d) => (d as f32).to_bits() as u64,
                        },
                        (InitVal::Float(f), Ty::F64) => match f {
                            FloatLit::F32Bits(b) => (f32::from_bits(b) as f64).to_bits(),
                            FloatLit::F64Bits(b) => b,
                            FloatLit::Decimal(d) => d.to_bits(),
                        },
                        (InitVal::Float(_), _) => {
                            return err(name.line, "float initialiser for an integer variable")
                        }
                    };
                    init[i * es..(i + 1) * es].copy_from_slice(&bytes.to_le_bytes()[..es]);
                }
            }
            out.push(VarDecl {
                name: name.text.to_string(),
                space,
                align: align.unwrap_or(ty.size()).max(1),
                size,
                init,
                is_extern,
                line: name.line,
            });
            if !self.eat_punct(b',') {
                break;
            }
        }
        self.expect_punct(b';')?;
        Ok(out)
    }

    fn init_values(&mut self, out: &mut Vec<InitVal>) -> Result<(), PtxError> {
        if self.eat_punct(b'{') {
            if self.eat_punct(b'}') {
                return Ok(());
            }
            loop {
                self.init_values(out)?;
                if self.eat_punct(b'}') {
                    return Ok(());
                }
                self.expect_punct(b',')?;
            }
        }
        let neg = self.eat_punct(b'-');
        let t = self.next()?;
        if t.kind != Kind::Num {
            return err(
                t.line,
                format!("unsupported initialiser '{}' (only numbers)", t.text),
            );
        }
        if let Some(f) = lexer::parse_float(t.text) {
            let f = if neg {
                match f {
                    FloatLit::F32Bits(b) => FloatLit::F32Bits(b ^ 0x8000_0000),
                    FloatLit::F64Bits(b) => FloatLit::F64Bits(b ^ (1 << 63)),
                    FloatLit::Decimal(d) => FloatLit::Decimal(-d),
                }
            } else {
                f
            };
            out.push(InitVal::Float(f));
        } else if let Some(v) = lexer::parse_int(t.text) {
            out.push(InitVal::Int(if neg { v.wrapping_neg() } else { v }));
        } else {
            return err(t.line, format!("bad number '{}'", t.text));
        }
        Ok(())
    }

    fn param_decl(&mut self) -> Result<ParamDecl, PtxError> {
        let t = self.word()?;
        if t.text != ".param" {
            return err(t.line, format!("expected .param, found '{}'", t.text));
        }
        let mut d = self.var_decl_noterm()?;
        if d.size == 0 {
            return err(t.line, format!("parameter '{}' has no size", d.name));
        }
        d.align = d.align.max(1);
        Ok(d)
    }

    /// A `.param` declaration in an entry's signature (no `;`).
    fn var_decl_noterm(&mut self) -> Result<ParamDecl, PtxError> {
        let line = self.line();
        let mut align: Option<u32> = None;
        let mut ty: Option<Ty> = None;
        let mut vec = 1u64;
        loop {
            let t = self.word()?;
            match t.text {
                ".align" => {
                    let a = self.int()?;
                    if a == 0 || !a.is_power_of_two() {
                        return err(t.line, format!("bad alignment {a}"));
                    }
                    align = Some(a as u32);
                }
                ".v2" => vec = 2,
                ".v4" => vec = 4,
                ".ptr" | ".global" | ".shared" | ".const" | ".local" => {}
                w if w.starts_with('.') => match Ty::from_name(&w[1..]) {
                    Some(tt) if tt != Ty::Pred => ty = Some(tt),
                    _ => return err(t.line, format!("unknown type or attribute '{w}'")),
                },
                _ => {
                    let Some(ty) = ty else {
                        return err(line, "parameter without a type");
                    };
                    let mut count = 1u64;
                    while self.eat_punct(b'[') {
                        let n = self.int()?;
                        self.expect_punct(b']')?;
                        count = count.saturating_mul(n);
                    }
                    return Ok(ParamDecl {
                        name: t.text.to_string(),
                        size: ty.size() as u64 * vec * count,
                        align: align.unwrap_or(ty.size() * vec as u32),
                    });
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum InitVal {
    Int(u64),
    Float(FloatLit),
}

/// Parses a whole module.
pub fn parse(text: &str) -> Result<Ast, PtxError> {
    let toks = lexer::lex(text)?;
    let last_line = toks.last().map(|t| t.line).unwrap_or(1);
    let mut p = Parser {
        toks,
        pos: 0,
        last_line,
    };
    let mut ast = Ast::default();
    let mut saw_version = false;
    while let Some(t) = p.peek() {
        if t.kind != Kind::Word {
            return err(t.line, format!("unexpected '{}'", t.text));
        }
        match t.text {
            ".version" => {
                p.pos += 1;
                let v = p.next()?;
                let ok = v
                    .text
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                    .is_some_and(|(maj, min)| maj >= 6 && (maj < 8 || (maj == 8 && min <= 5)));
                if !ok {
                    return err(v.line, format!("unsupported .version {}", v.text));
                }
                saw_version = true;
            }
            ".target" => {
                p.pos += 1;
                loop {
                    let w = p.word()?;
                    let ok = match w.text.strip_prefix("sm_") {
                        Some(n) => n
                            .trim_end_matches(['a', 'f'])
                            .parse::<u32>()
                            .is_ok_and(|n| (30..=90).contains(&n)),
                        None => matches!(w.text, "texmode_unified" | "map_f64_to_f32" | "debug"),
                    };
                    if !ok {
                        return err(w.line, format!("unsupported .target {}", w.text));
                    }
                    if !p.eat_punct(b',') {
                        break;
                    }
                }
            }
            ".address_size" => {
                p.pos += 1;
                let v = p.int()?;
                if v != 64 {
                    return err(t.line, format!("unsupported .address_size {v}"));
                }
            }
            ".file" => {
                p.pos += 1;
                let n = p.int()?;
                let s = p.next()?;
                if s.kind == Kind::Str {
                    ast.files
                        .insert(n as u32, s.text.trim_matches('"').to_string());
                }
                p.skip_line(t.line);
            }
            ".section" => {
                p.pos += 1;
                p.skip_section()?;
            }
            ".pragma" => {
                p.pos += 1;
                p.skip_to_semicolon()?;
            }
            ".visible" | ".weak" | ".extern" | ".common" | ".entry" | ".global" | ".const"
            | ".shared" | ".local" | ".func" => {
                let mut is_extern = false;
                let mut w = p.word()?;
                while matches!(w.text, ".visible" | ".weak" | ".extern" | ".common") {
                    is_extern |= w.text == ".extern";
                    w = p.word()?;
                }
                match w.text {
                    ".entry" => {
                        if !saw_version {
                            return err(w.line, ".entry before .version");
                        }
                        let f = parse_entry(&mut p, w.line)?;
                        ast.funcs.push(f);
                    }
                    ".global" => ast.vars.extend(p.var_decl(Space::Global, is_extern)?),
                    ".const" => ast.vars.extend(p.var_decl(Space::Const, is_extern)?),
                    ".shared" => ast.vars.extend(p.var_decl(Space::Shared, is_extern)?),
                    ".func" => {
                        return err(w.line, "unsupported directive '.func' (device functions)")
                    }
                    ".local" => {
                        return err(w.line, "module-scope .local variables are not supported")
                    }
                    other => return err(w.line, format!("unknown directive '{other}'")),
                }
            }
            other => {
                if other.starts_with('.') {
                    return err(t.line, format!("unknown directive '{other}'"));
                }
                return err(t.line, format!("unexpected '{other}' at module scope"));
            }
        }
    }
    if !saw_version {
        return err(1, "missing .version");
    }
    Ok(ast)
}

fn parse_entry(p: &mut Parser<'_>, line: u32) -> Result<Function, PtxError> {
    let name = p.word()?;
    let mut f = Function {
        name: name.text.to_string(),
        line,
        params: Vec::new(),
        maxntid: None,
        reqntid: None,
        regs: Vec::new(),
        insts: Vec::new(),
        labels: HashMap::new(),
        vars: Vec::new(),
    };
    if p.eat_punct(b'(') && !p.eat_punct(b')') {
        loop {
            f.params.push(p.param_decl()?);
            if p.eat_punct(b')') {
                break;
            }
            p.expect_punct(b',')?;
        }
    }
    // Performance directives up to the body.
    loop {
        let t = p.next()?;
        match (t.kind, t.text) {
            (Kind::Punct(b'{'), _) => break,
            (Kind::Word, ".maxntid") => f.maxntid = Some(p.dims()?),
            (Kind::Word, ".reqntid") => f.reqntid = Some(p.dims()?),
            (Kind::Word, ".minnctapersm" | ".maxnreg" | ".maxnctapersm" | ".maxclusterrank") => {
                p.int()?;
            }
            (Kind::Word, ".noreturn") => {}
            (Kind::Word, ".pragma") => p.skip_to_semicolon()?,
            (Kind::Punct(b';'), _) => {
                return err(t.line, format!("entry '{}' without a body", f.name));
            }
            _ => {
                return err(
                    t.line,
                    format!("unknown directive '{}' in the entry header", t.text),
                )
            }
        }
    }
    let mut scopes: Vec<HashMap<String, u32>> = vec![HashMap::new()];
    let mut loc = (0u32, 0u32);
    let mut pending_labels: Vec<(String, u32)> = Vec::new();
    loop {
        let t = p.next()?;
        match t.kind {
            Kind::Punct(b'{') => scopes.push(HashMap::new()),
            Kind::Punct(b'}') => {
                scopes.pop();
                if scopes.is_empty() {
                    break;
                }
            }
            Kind::Punct(b'@') => {
                let neg = p.eat_punct(b'!');
                let r = p.word()?;
                let Some(id) = lookup(&scopes, r.text) else {
                    return err(r.line, format!("undeclared register '{}'", r.text));
                };
                let op = p.word()?;
                let inst = parse_inst(p, &scopes, op, Some((id, neg)), loc)?;
                add_inst(&mut f, &mut pending_labels, inst)?;
            }
            Kind::Word if p.is_punct(b':') => {
                p.pos += 1;
                if f.labels.contains_key(t.text) || pending_labels.iter().any(|(n, _)| n == t.text)
                {
                    return err(t.line, format!("label '{}' defined twice", t.text));
                }
                pending_labels.push((t.text.to_string(), t.line));
            }
            Kind::Word if t.text.starts_with('.') => match t.text {
                ".reg" => {
                    let tyw = p.word()?;
                    let ty = tyw
                        .text
                        .strip_prefix('.')
                        .and_then(Ty::from_name)
                        .ok_or_else(|| PtxError {
                            line: tyw.line as usize,
                            message: format!("unknown register type '{}'", tyw.text),
                        })?;
                    loop {
                        let n = p.word()?;
                        let scope = scopes.last_mut().ok_or_else(|| PtxError {
                            line: n.line as usize,
                            message: "no scope".into(),
                        })?;
                        if p.eat_punct(b'<') {
                            let count = p.int()?;
                            p.expect_punct(b'>')?;
                            if count > 1 << 20 {
                                return err(n.line, "too many registers");
                            }
                            for i in 0..count {
                                let id = f.regs.len() as u32;
                                f.regs.push(RegInfo { ty });
                                scope.insert(format!("{}{}", n.text, i), id);
                            }
                        } else {
                            let id = f.regs.len() as u32;
                            f.regs.push(RegInfo { ty });
                            scope.insert(n.text.to_string(), id);
                        }
                        if !p.eat_punct(b',') {
                            break;
                        }
                    }
                    p.expect_punct(b';')?;
                }
                ".shared" => f.vars.extend(p.var_decl(Space::Shared, false)?),
                ".local" => f.vars.extend(p.var_decl(Space::Local, false)?),
                ".const" => f.vars.extend(p.var_decl(Space::Const, false)?),
                ".extern" => {
                    let w = p.word()?;
                    if w.text != ".shared" {
                        return err(w.line, format!("unsupported '.extern {}'", w.text));
                    }
                    f.vars.extend(p.var_decl(Space::Shared, true)?);
                }
                ".loc" => {
                    let file = p.int()?;
                    let l = p.int()?;
                    loc = (file as u32, l as u32);
                    p.skip_line(t.line);
                }
                ".pragma" => p.skip_to_semicolon()?,
                other => return err(t.line, format!("unknown directive '{other}'")),
            },
            Kind::Word => {
                let inst = parse_inst(p, &scopes, t, None, loc)?;
                add_inst(&mut f, &mut pending_labels, inst)?;
            }
            _ => return err(t.line, format!("unexpected '{}'", t.text)),
        }
    }
    // Labels at the very end point one past the last instruction.
    let end = f.insts.len() as u32;
    for (n, l) in pending_labels.drain(..) {
        f.labels.insert(n, (end, l));
    }
    Ok(f)
}

fn add_inst(
    f: &mut Function,
    pending: &mut Vec<(String, u32)>,
    inst: RawInst,
) -> Result<(), PtxError> {
    let idx = f.insts.len() as u32;
    for (n, l) in pending.drain(..) {
        f.labels.insert(n, (idx, l));
    }
    f.insts.push(inst);
    Ok(())
}

fn lookup(scopes: &[HashMap<String, u32>], name: &str) -> Option<u32> {
    scopes.iter().rev().find_map(|s| s.get(name).copied())
}

fn parse_inst(
    p: &mut Parser<'_>,
    scopes: &[HashMap<String, u32>],
    op: Tok<'_>,
    guard: Option<(u32, bool)>,
    loc: (u32, u32),
) -> Result<RawInst, PtxError> {
    if op.kind != Kind::Word || op.text.starts_with('.') || op.text.starts_with('%') {
        return err(
            op.line,
            format!("expected an instruction, found '{}'", op.text),
        );
    }
    let mut ops = Vec::new();
    if !p.eat_punct(b';') {
        loop {
            let o = parse_operand(p, scopes)?;
            let o = if p.eat_punct(b'|') {
                let b = parse_operand(p, scopes)?;
                Opnd::Pair(Box::new(o), Box::new(b))
            } else {
                o
            };
            ops.push(o);
            if p.eat_punct(b';') {
                break;
            }
            let t = p.next()?;
            if t.kind != Kind::Punct(b',') {
                return err(
                    t.line,
                    format!("expected ',' or ';' in '{}', found '{}'", op.text, t.text),
                );
            }
        }
    }
    Ok(RawInst {
        line: op.line,
        loc,
        guard,
        opcode: op.text.to_string(),
        ops,
    })
}

fn num_operand(t: Tok<'_>, neg: bool) -> Result<Opnd, PtxError> {
    if let Some(f) = lexer::parse_float(t.text) {
        let f = if neg {
            match f {
                FloatLit::F32Bits(b) => FloatLit::F32Bits(b ^ 0x8000_0000),
                FloatLit::F64Bits(b) => FloatLit::F64Bits(b ^ (1 << 63)),
                FloatLit::Decimal(d) => FloatLit::Decimal(-d),
            }
        } else {
            f
        };
        return Ok(Opnd::Float(f));
    }
    match lexer::parse_int(t.text) {
        Some(v) => Ok(Opnd::Int(if neg { v.wrapping_neg() } else { v })),
        None => err(t.line, format!("bad number '{}'", t.text)),
    }
}

fn parse_operand(p: &mut Parser<'_>, scopes: &[HashMap<String, u32>]) -> Result<Opnd, PtxError> {
    let t = p.next()?;
    match t.kind {
        Kind::Punct(b'!') => Ok(Opnd::Not(Box::new(parse_operand(p, scopes)?))),
        Kind::Punct(b'-') => {
            let n = p.next()?;
            if n.kind != Kind::Num {
                return err(
                    n.line,
                    format!("expected a number after '-', found '{}'", n.text),
                );
            }
            num_operand(n, true)
        }
        Kind::Num => num_operand(t, false),
        Kind::Word => Ok(match lookup(scopes, t.text) {
            Some(id) => Opnd::Reg(id),
            None => Opnd::Name(t.text.to_string()),
        }),
        Kind::Punct(b'{') => {
            let mut v = Vec::new();
            loop {
                v.push(parse_operand(p, scopes)?);
                if p.eat_punct(b'}') {
                    break;
                }
                p.expect_punct(b',')?;
            }
            Ok(Opnd::Vec(v))
        }
        Kind::Punct(b'[') => {
            let b = p.next()?;
            let base = match b.kind {
                Kind::Word => match lookup(scopes, b.text) {
                    Some(id) => AddrBase::Reg(id),
                    None => AddrBase::Name(b.text.to_string()),
                },
                Kind::Num => {
                    let v = lexer::parse_int(b.text).ok_or_else(|| PtxError {
                        line: b.line as usize,
                        message: format!("bad address '{}'", b.text),
                    })?;
                    p.expect_punct(b']')?;
                    return Ok(Opnd::Addr(AddrBase::None, v as i64));
                }
                _ => return err(b.line, format!("bad address starting '{}'", b.text)),
            };
            let mut off: i64 = 0;
            while !p.eat_punct(b']') {
                let s = p.next()?;
                let mut neg = match s.kind {
                    Kind::Punct(b'+') => false,
                    Kind::Punct(b'-') => true,
                    _ => return err(s.line, format!("bad address: unexpected '{}'", s.text)),
                };
                if p.eat_punct(b'-') {
                    neg = !neg;
                }
                let n = p.next()?;
                let v = match (n.kind, lexer::parse_int(n.text)) {
                    (Kind::Num, Some(v)) => v as i64,
                    _ => return err(n.line, format!("bad address offset '{}'", n.text)),
                };
                off = if neg {
                    off.wrapping_sub(v)
                } else {
                    off.wrapping_add(v)
                };
            }
            Ok(Opnd::Addr(base, off))
        }
        _ => err(t.line, format!("unexpected '{}' in operands", t.text)),
    }
}
