//! A small page-layout engine over `pdf-writer`: text measured with the
//! bundled font's own advances, wrapping, tables that repeat their header on
//! a new page, boxes, lines and PNG images, on A4 pages with a header and a
//! footer on every page.
//!
//! Pages are built as lists of operations in points from the top-left
//! corner; [`Doc::finish`] then subsets the two fonts to the glyphs used,
//! embeds them as CID fonts with a ToUnicode map (so the text can be
//! searched and extracted), and writes the file. Nothing in it reads the
//! clock: the same run gives the same bytes.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::output::charts::{FONT_BOLD, FONT_REGULAR};

/// Page width, points (A4).
pub const PAGE_W: f32 = 595.28;
/// Page height, points (A4).
pub const PAGE_H: f32 = 841.89;
/// Left and right margin.
pub const MARGIN: f32 = 40.0;
/// Width between the margins.
pub const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const TOP: f32 = 58.0;
const BOTTOM: f32 = PAGE_H - 50.0;

/// An RGB colour, components 0..1.
pub type Color = [f32; 3];
/// Body text.
pub const BLACK: Color = [0.1, 0.1, 0.1];
/// Secondary text.
pub const GREY: Color = [0.42, 0.42, 0.42];
/// Rules and table lines.
pub const LIGHT: Color = [0.82, 0.82, 0.82];
/// Table header and zebra fill.
pub const PALE: Color = [0.95, 0.95, 0.95];
/// Accepted.
pub const GREEN: Color = [0.1, 0.52, 0.22];
/// Rejected, failed, simulated.
pub const RED: Color = [0.78, 0.12, 0.12];
/// Incomplete, warnings.
pub const ORANGE: Color = [0.85, 0.45, 0.0];
/// White.
pub const WHITE: Color = [1.0, 1.0, 1.0];

/// Regular or bold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// DejaVu Sans.
    Regular,
    /// DejaVu Sans Bold.
    Bold,
}

/// Horizontal alignment inside a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Flush left.
    Left,
    /// Flush right.
    Right,
    /// Centred.
    Center,
}

struct Face {
    data: &'static [u8],
    face: ttf_parser::Face<'static>,
    upem: f32,
}

impl Face {
    fn new(data: &'static [u8]) -> Self {
        // The bundled fonts are compiled in and known to parse; the unit
        // tests below make sure of it.
        let face = ttf_parser::Face::parse(data, 0).expect("bundled font parses");
        let upem = f32::from(face.units_per_em().max(1));
        Face { data, face, upem }
    }

    fn glyph(&self, c: char) -> u16 {
        self.face.glyph_index(c).map_or(0, |g| g.0)
    }

    fn advance(&self, gid: u16) -> f32 {
        f32::from(
            self.face
                .glyph_hor_advance(ttf_parser::GlyphId(gid))
                .unwrap_or(0),
        ) / self.upem
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .map(|c| self.advance(self.glyph(c)))
            .sum::<f32>()
            * size
    }
}

enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        weight: Weight,
        color: Color,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Color>,
        stroke: Option<(Color, f32)>,
    },
    Line {
        from: (f32, f32),
        to: (f32, f32),
        color: Color,
        width: f32,
    },
    Image {
        index: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

/// A PNG to place: its zlib image data (the IDAT chunks) and size.
struct Image {
    idat: Vec<u8>,
    width: u32,
    height: u32,
}

/// One table cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The text; wrapped to the column.
    pub text: String,
    /// Its colour.
    pub color: Color,
    /// Its weight.
    pub weight: Weight,
    /// Its size in points (the table's size when 0).
    pub size: f32,
    /// A background fill.
    pub fill: Option<Color>,
}

impl Cell {
    /// Plain body text.
    pub fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            color: BLACK,
            weight: Weight::Regular,
            size: 0.0,
            fill: None,
        }
    }

    /// Text of a colour, bold when `bold`.
    pub fn colored(text: impl Into<String>, color: Color, bold: bool) -> Self {
        Cell {
            weight: if bold { Weight::Bold } else { Weight::Regular },
            color,
            ..Cell::plain(text)
        }
    }
}

/// A table column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header text.
    pub title: String,
    /// Width in points.
    pub width: f32,
    /// Alignment of its cells.
    pub align: Align,
}

/// A document being laid out.
pub struct Doc {
    faces: [Face; 2],
    pages: Vec<Vec<Op>>,
    images: Vec<Image>,
    /// The next free line's top, in points from the top of the page.
    pub y: f32,
    header: String,
    footer: String,
    simulated: bool,
    title: String,
}

/// Splits a PNG into its concatenated IDAT data (a zlib stream of filtered
/// rows) and size; `None` for anything but 8-bit RGB, non-interlaced.
fn png_idat(png: &[u8]) -> Option<Image> {
    let mut at = 8;
    let (mut width, mut height) = (0, 0);
    let mut idat = Vec::new();
    if png.get(..8)? != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().ok()?) as usize;
        let kind = &png[at + 4..at + 8];
        let data = png.get(at + 8..at + 8 + len)?;
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?);
                height = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?);
                // bit depth 8, colour type 2 (RGB), no interlace
                if data.get(8..13)? != [8, 2, 0, 0, 0] {
                    return None;
                }
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    (width > 0 && height > 0 && !idat.is_empty()).then_some(Image {
        idat,
        width,
        height,
    })
}

impl Doc {
    /// A document whose pages carry `header` at the top and `footer` at the
    /// bottom, and a SIMULATED mark when `simulated`.
    pub fn new(title: &str, header: String, footer: String, simulated: bool) -> Self {
        let mut doc = Doc {
            faces: [Face::new(FONT_REGULAR), Face::new(FONT_BOLD)],
            pages: Vec::new(),
            images: Vec::new(),
            y: TOP,
            header,
            footer,
            simulated,
            title: title.to_string(),
        };
        doc.new_page();
        doc
    }

    fn face(&self, w: Weight) -> &Face {
        &self.faces[w as usize]
    }

    fn push(&mut self, op: Op) {
        if let Some(p) = self.pages.last_mut() {
            p.push(op);
        }
    }

    /// Width of `text` at `size`, points.
    pub fn width(&self, text: &str, size: f32, weight: Weight) -> f32 {
        self.face(weight).width(text, size)
    }

    /// Starts a new page.
    pub fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Space left on the page below the cursor, points.
    pub fn room(&self) -> f32 {
        BOTTOM - self.y
    }

    /// Starts a new page unless `h` points fit below the cursor.
    pub fn ensure(&mut self, h: f32) {
        if self.y + h > BOTTOM && self.y > TOP {
            self.new_page();
        }
    }

    /// Text with its baseline at `y`.
    pub fn text(&mut self, x: f32, y: f32, size: f32, weight: Weight, color: Color, text: &str) {
        if text.is_empty() {
            return;
        }
        self.push(Op::Text {
            x,
            y,
            size,
            weight,
            color,
            text: text.to_string(),
        });
    }

    /// Text aligned in the box [x, x + w], cut to fit.
    #[allow(clippy::too_many_arguments)]
    pub fn text_in(
        &mut self,
        x: f32,
        w: f32,
        y: f32,
        size: f32,
        weight: Weight,
        color: Color,
        text: &str,
        align: Align,
    ) {
        let t = self.fit(text, size, weight, w);
        let tw = self.width(&t, size, weight);
        let x = match align {
            Align::Left => x,
            Align::Right => x + w - tw,
            Align::Center => x + (w - tw) / 2.0,
        };
        self.text(x, y, size, weight, color, &t);
    }

    /// A filled and/or stroked rectangle, top-left at (x, y).
    pub fn rect(
        &mut self,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Color>,
        stroke: Option<(Color, f32)>,
    ) {
        self.push(Op::Rect {
            x,
            y,
            w,
            h,
            fill,
            stroke,
        });
    }

    /// A straight line.
    pub fn line(&mut self, from: (f32, f32), to: (f32, f32), color: Color, width: f32) {
        self.push(Op::Line {
            from,
            to,
            color,
            width,
        });
    }

    /// `text` cut to `max_w` points, with an ellipsis when cut.
    pub fn fit(&self, text: &str, size: f32, weight: Weight, max_w: f32) -> String {
        if self.width(text, size, weight) <= max_w {
            return text.to_string();
        }
        let mut out = String::new();
        for c in text.chars() {
            let mut next = out.clone();
            next.push(c);
            next.push('…');
            if self.width(&next, size, weight) > max_w {
                break;
            }
            out.push(c);
        }
        out.push('…');
        out
    }

    /// `text` broken into lines of at most `max_w` points: at spaces, and
    /// inside a word only when the word alone is too wide.
    pub fn wrap(&self, text: &str, size: f32, weight: Weight, max_w: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in text.split('\n') {
            let mut line = String::new();
            for word in para.split(' ') {
                let candidate = if line.is_empty() {
                    word.to_string()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, size, weight) <= max_w {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // A word wider than the line: break it by characters.
                for c in word.chars() {
                    let mut next = line.clone();
                    next.push(c);
                    if self.width(&next, size, weight) > max_w && !line.is_empty() {
                        lines.push(std::mem::take(&mut line));
                        line.push(c);
                    } else {
                        line = next;
                    }
                }
            }
            lines.push(line);
        }
        lines
    }

    /// A wrapped paragraph at the cursor, indented by `indent`; moves the
    /// cursor below it, and across pages when it must.
    pub fn paragraph(&mut self, text: &str, size: f32, weight: Weight, color: Color, indent: f32) {
        let lead = size * 1.35;
        for line in self.wrap(text, size, weight, CONTENT_W - indent) {
            self.ensure(lead);
            self.y += lead;
            self.text(
                MARGIN + indent,
                self.y - size * 0.3,
                size,
                weight,
                color,
                &line,
            );
        }
    }

    /// A section heading, kept with at least `keep` points of what follows.
    pub fn heading(&mut self, text: &str, size: f32, keep: f32) {
        self.ensure(size * 2.0 + keep);
        self.y += size * 1.6;
        self.text(MARGIN, self.y, size, Weight::Bold, BLACK, text);
        self.y += size * 0.5;
    }

    /// Vertical space.
    pub fn gap(&mut self, h: f32) {
        self.y += h;
    }

    /// A table at the cursor; rows that do not fit go on the next page,
    /// under a repeated header. Cells wrap within their column.
    pub fn table(&mut self, columns: &[Column], rows: &[Vec<Cell>], size: f32) {
        let pad = 3.0;
        let lead = size * 1.3;
        let header_cells: Vec<Cell> = columns
            .iter()
            .map(|c| Cell {
                fill: Some(PALE),
                ..Cell::colored(c.title.clone(), BLACK, true)
            })
            .collect();
        let layout = |doc: &Doc, row: &[Cell]| -> (Vec<Vec<String>>, f32) {
            let lines: Vec<Vec<String>> = columns
                .iter()
                .zip(row)
                .map(|(col, cell)| {
                    let s = if cell.size > 0.0 { cell.size } else { size };
                    doc.wrap(&cell.text, s, cell.weight, col.width - 2.0 * pad)
                })
                .collect();
            let h = columns
                .iter()
                .zip(row)
                .zip(&lines)
                .map(|((_, cell), l)| {
                    let s = if cell.size > 0.0 { cell.size } else { size };
                    l.len() as f32 * s * 1.3
                })
                .fold(lead, f32::max)
                + 2.0 * pad;
            (lines, h)
        };
        let draw_row = |doc: &mut Doc, row: &[Cell], lines: &[Vec<String>], h: f32| {
            let mut x = MARGIN;
            let top = doc.y;
            for ((col, cell), text) in columns.iter().zip(row).zip(lines) {
                if let Some(f) = cell.fill {
                    doc.rect(x, top, col.width, h, Some(f), None);
                }
                let s = if cell.size > 0.0 { cell.size } else { size };
                let block = text.len() as f32 * s * 1.3;
                let mut y = top + (h - block) / 2.0 + s * 1.0;
                for l in text {
                    doc.text_in(
                        x + pad,
                        col.width - 2.0 * pad,
                        y,
                        s,
                        cell.weight,
                        cell.color,
                        l,
                        col.align,
                    );
                    y += s * 1.3;
                }
                x += col.width;
            }
            let total: f32 = columns.iter().map(|c| c.width).sum();
            doc.line((MARGIN, top + h), (MARGIN + total, top + h), LIGHT, 0.5);
            doc.y = top + h;
        };
        let (hl, hh) = layout(self, &header_cells);
        let first = rows.first().map_or(0.0, |r| layout(self, r).1);
        self.ensure(hh + first);
        draw_row(self, &header_cells, &hl, hh);
        for row in rows {
            let (lines, h) = layout(self, row);
            if self.y + h > BOTTOM {
                self.new_page();
                draw_row(self, &header_cells, &hl, hh);
            }
            draw_row(self, row, &lines, h);
        }
    }

    /// Places a PNG `w` points wide at the cursor (its height follows its
    /// aspect ratio) and moves the cursor below it. Returns false when the
    /// bytes are not a PNG kiln can embed.
    pub fn image(&mut self, png: &[u8], w: f32) -> bool {
        let Some(img) = png_idat(png) else {
            return false;
        };
        let h = w * img.height as f32 / img.width as f32;
        self.ensure(h);
        let index = self.images.len();
        self.images.push(img);
        let x = MARGIN + (CONTENT_W - w) / 2.0;
        self.push(Op::Image {
            index,
            x,
            y: self.y,
            w,
            h,
        });
        self.rect(x, self.y, w, h, None, Some((LIGHT, 0.5)));
        self.y += h;
        true
    }

    fn decorate(&mut self) {
        let n = self.pages.len();
        for i in 0..n {
            let mut extra = Vec::new();
            let header = self.fit(&self.header, 8.0, Weight::Regular, CONTENT_W - 110.0);
            extra.push(Op::Text {
                x: MARGIN,
                y: 30.0,
                size: 8.0,
                weight: Weight::Regular,
                color: GREY,
                text: header,
            });
            if self.simulated {
                let word = "SIMULATED";
                let w = self.width(word, 11.0, Weight::Bold) + 14.0;
                extra.push(Op::Rect {
                    x: PAGE_W - MARGIN - w,
                    y: 17.0,
                    w,
                    h: 19.0,
                    fill: Some(RED),
                    stroke: None,
                });
                extra.push(Op::Text {
                    x: PAGE_W - MARGIN - w + 7.0,
                    y: 31.0,
                    size: 11.0,
                    weight: Weight::Bold,
                    color: WHITE,
                    text: word.into(),
                });
            }
            extra.push(Op::Line {
                from: (MARGIN, 40.0),
                to: (PAGE_W - MARGIN, 40.0),
                color: LIGHT,
                width: 0.6,
            });
            extra.push(Op::Line {
                from: (MARGIN, PAGE_H - 38.0),
                to: (PAGE_W - MARGIN, PAGE_H - 38.0),
                color: LIGHT,
                width: 0.6,
            });
            let page = format!("page {} of {n}", i + 1);
            let pw = self.width(&page, 8.0, Weight::Regular);
            let footer = if self.simulated {
                format!(
                    "SIMULATED run: figures come from a model, not from hardware · {}",
                    self.footer
                )
            } else {
                self.footer.clone()
            };
            let footer = self.fit(&footer, 8.0, Weight::Regular, CONTENT_W - pw - 12.0);
            extra.push(Op::Text {
                x: MARGIN,
                y: PAGE_H - 26.0,
                size: 8.0,
                weight: Weight::Regular,
                color: if self.simulated { RED } else { GREY },
                text: footer,
            });
            extra.push(Op::Text {
                x: PAGE_W - MARGIN - pw,
                y: PAGE_H - 26.0,
                size: 8.0,
                weight: Weight::Regular,
                color: GREY,
                text: page,
            });
            self.pages[i].extend(extra);
        }
    }

    /// The finished PDF.
    pub fn finish(mut self) -> Vec<u8> {
        self.decorate();
        // Glyphs used, per face: old glyph id -> the text it stands for.
        let mut used: [BTreeMap<u16, char>; 2] = [BTreeMap::new(), BTreeMap::new()];
        for op in self.pages.iter().flatten() {
            if let Op::Text { weight, text, .. } = op {
                let f = &self.faces[*weight as usize];
                for c in text.chars() {
                    used[*weight as usize].entry(f.glyph(c)).or_insert(c);
                }
            }
        }
        let mut remappers = [
            subsetter::GlyphRemapper::new(),
            subsetter::GlyphRemapper::new(),
        ];
        for (r, u) in remappers.iter_mut().zip(&used) {
            for &g in u.keys() {
                r.remap(g);
            }
        }

        let mut pdf = Pdf::new();
        let mut next = Ref::new(1);
        let mut alloc = || next.bump();
        let catalog = alloc();
        let pages_id = alloc();
        let info = alloc();
        let font_ids: Vec<Ref> = (0..2).map(|_| alloc()).collect();
        let image_ids: Vec<Ref> = (0..self.images.len()).map(|_| alloc()).collect();
        let page_ids: Vec<Ref> = (0..self.pages.len()).map(|_| alloc()).collect();

        pdf.catalog(catalog).pages(pages_id);
        pdf.pages(pages_id)
            .kids(page_ids.iter().copied())
            .count(page_ids.len() as i32);
        pdf.document_info(info)
            .title(TextStr(&self.title))
            .producer(TextStr(&format!("kiln {}", crate::VERSION)));

        for (i, face) in self.faces.iter().enumerate() {
            let base = if i == 0 {
                "KILNAA+DejaVuSans"
            } else {
                "KILNAB+DejaVuSans-Bold"
            };
            let (cid, desc, file, cmap) = (alloc(), alloc(), alloc(), alloc());
            pdf.type0_font(font_ids[i])
                .base_font(Name(base.as_bytes()))
                .encoding_predefined(Name(b"Identity-H"))
                .descendant_font(cid)
                .to_unicode(cmap);
            let sys = SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"Identity"),
                supplement: 0,
            };
            // New glyph ids are 0..n in the order they were remapped.
            let mut widths = vec![0.0f32; remappers[i].num_gids() as usize];
            let mut unicode = UnicodeCmap::new(Name(b"Custom"), sys);
            for (&old, &c) in &used[i] {
                if let Some(new) = remappers[i].get(old) {
                    if let Some(w) = widths.get_mut(new as usize) {
                        *w = face.advance(old) * 1000.0;
                    }
                    unicode.pair(new, c);
                }
            }
            {
                let mut cidf = pdf.cid_font(cid);
                cidf.subtype(CidFontType::Type2)
                    .base_font(Name(base.as_bytes()))
                    .system_info(sys)
                    .font_descriptor(desc)
                    .default_width(0.0)
                    .cid_to_gid_map_predefined(Name(b"Identity"));
                cidf.widths().consecutive(0, widths.iter().copied());
            }
            let bbox = face.face.global_bounding_box();
            let k = 1000.0 / face.upem;
            pdf.font_descriptor(desc)
                .name(Name(base.as_bytes()))
                .flags(FontFlags::NON_SYMBOLIC)
                .bbox(Rect::new(
                    f32::from(bbox.x_min) * k,
                    f32::from(bbox.y_min) * k,
                    f32::from(bbox.x_max) * k,
                    f32::from(bbox.y_max) * k,
                ))
                .italic_angle(0.0)
                .ascent(f32::from(face.face.ascender()) * k)
                .descent(f32::from(face.face.descender()) * k)
                .cap_height(f32::from(face.face.capital_height().unwrap_or(0)) * k)
                .stem_v(if i == 0 { 80.0 } else { 140.0 })
                .font_file2(file);
            // A font the subsetter cannot cut is embedded whole.
            let program = subsetter::subset(face.data, 0, &remappers[i])
                .unwrap_or_else(|_| face.data.to_vec());
            let packed = miniz_oxide::deflate::compress_to_vec_zlib(&program, 6);
            pdf.stream(file, &packed).filter(Filter::FlateDecode);
            let cmap_bytes = unicode.finish();
            pdf.cmap(cmap, cmap_bytes.as_slice());
        }

        for (img, id) in self.images.iter().zip(&image_ids) {
            let mut x = pdf.image_xobject(*id, &img.idat);
            x.filter(Filter::FlateDecode);
            x.width(img.width as i32);
            x.height(img.height as i32);
            x.color_space().device_rgb();
            x.bits_per_component(8);
            x.decode_parms()
                .predictor(pdf_writer::types::Predictor::PngOptimum)
                .colors(3)
                .bits_per_component(8)
                .columns(img.width as i32);
        }

        for (p, ops) in self.pages.iter().enumerate() {
            let mut c = Content::new();
            let mut images_here = Vec::new();
            for op in ops {
                match op {
                    Op::Text {
                        x,
                        y,
                        size,
                        weight,
                        color,
                        text,
                    } => {
                        let w = *weight as usize;
                        let f = &self.faces[w];
                        let mut bytes = Vec::with_capacity(text.len() * 2);
                        for ch in text.chars() {
                            let g = remappers[w].get(f.glyph(ch)).unwrap_or(0);
                            bytes.extend_from_slice(&g.to_be_bytes());
                        }
                        c.begin_text();
                        c.set_font(Name(if w == 0 { b"F0" } else { b"F1" }), *size);
                        c.set_fill_rgb(color[0], color[1], color[2]);
                        c.set_text_matrix([1.0, 0.0, 0.0, 1.0, *x, PAGE_H - *y]);
                        c.show(Str(&bytes));
                        c.end_text();
                    }
                    Op::Rect {
                        x,
                        y,
                        w,
                        h,
                        fill,
                        stroke,
                    } => {
                        if let Some(f) = fill {
                            c.set_fill_rgb(f[0], f[1], f[2]);
                            c.rect(*x, PAGE_H - *y - *h, *w, *h);
                            c.fill_nonzero();
                        }
                        if let Some((s, lw)) = stroke {
                            c.set_stroke_rgb(s[0], s[1], s[2]);
                            c.set_line_width(*lw);
                            c.rect(*x, PAGE_H - *y - *h, *w, *h);
                            c.stroke();
                        }
                    }
                    Op::Line {
                        from,
                        to,
                        color,
                        width,
                    } => {
                        c.set_stroke_rgb(color[0], color[1], color[2]);
                        c.set_line_width(*width);
                        c.move_to(from.0, PAGE_H - from.1);
                        c.line_to(to.0, PAGE_H - to.1);
                        c.stroke();
                    }
                    Op::Image { index, x, y, w, h } => {
                        let name = format!("Im{index}");
                        c.save_state();
                        c.transform([*w, 0.0, 0.0, *h, *x, PAGE_H - *y - *h]);
                        c.x_object(Name(name.as_bytes()));
                        c.restore_state();
                        images_here.push(*index);
                    }
                }
            }
            let raw = c.finish();
            let packed = miniz_oxide::deflate::compress_to_vec_zlib(raw.as_slice(), 6);
            let content_id = alloc();
            pdf.stream(content_id, &packed).filter(Filter::FlateDecode);
            let mut page = pdf.page(page_ids[p]);
            page.parent(pages_id)
                .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
                .contents(content_id);
            let mut res = page.resources();
            {
                let mut fonts = res.fonts();
                fonts.pair(Name(b"F0"), font_ids[0]);
                fonts.pair(Name(b"F1"), font_ids[1]);
            }
            if !images_here.is_empty() {
                let mut xo = res.x_objects();
                for i in images_here {
                    let name = format!("Im{i}");
                    xo.pair(Name(name.as_bytes()), image_ids[i]);
                }
            }
            res.finish();
            page.finish();
        }
        pdf.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_fonts_parse_and_measure() {
        let doc = Doc::new("t", String::new(), String::new(), false);
        let w = doc.width("ACCEPT", 10.0, Weight::Bold);
        assert!(w > 30.0 && w < 60.0, "{w}");
        assert!(doc.width("ii", 10.0, Weight::Regular) < doc.width("WW", 10.0, Weight::Regular));
    }

    #[test]
    fn wrapping_keeps_every_word_and_respects_the_width() {
        let doc = Doc::new("t", String::new(), String::new(), false);
        let text = "below the baseline floor (below_baseline): bw_copy, bw_read, averyveryveryverylongwordthatcannotfit";
        let lines = doc.wrap(text, 9.0, Weight::Regular, 80.0);
        assert!(lines.len() > 2);
        for l in &lines {
            assert!(doc.width(l, 9.0, Weight::Regular) <= 80.0 + 0.01, "{l}");
        }
        assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        let cut = doc.fit(text, 9.0, Weight::Regular, 50.0);
        assert!(cut.ends_with('…') && doc.width(&cut, 9.0, Weight::Regular) <= 50.0);
    }

    #[test]
    fn a_png_that_is_not_rgb8_is_refused() {
        assert!(png_idat(b"not a png").is_none());
        assert!(png_idat(&[]).is_none());
    }
}
