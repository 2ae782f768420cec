//! Executable content in mail: file names with the extensions of programs
//! and scripts that run when opened, the first bytes of programs (Windows
//! PE/DOS, ELF, Mach-O), and the same one level inside zip and gzip
//! archives (names and first bytes) and RAR and 7z archives (names,
//! `rar`, `sevenz`). The MX refuses such attachments by default
//! (`smtp::content`).
//!
//! Imports flate2 and the sibling archive readers. Invariants: every function is total and bounded:
//! a zip is read through its central directory, at most `MAX_ENTRIES`
//! entries, and at most `MAGIC_LEN` bytes of any entry are inflated; a
//! damaged archive is judged on what could be read.

#![deny(clippy::indexing_slicing)]

use std::io::Read;

/// Extensions of files that run when opened (Gmail's list, in the main):
/// Windows programs, installers, scripts and shortcuts, Java archives,
/// disk images that carry them, Android packages.
const EXTENSIONS: &[&str] = &[
    "ade",
    "adp",
    "apk",
    "appx",
    "appxbundle",
    "bat",
    "cab",
    "chm",
    "cmd",
    "com",
    "cpl",
    "dll",
    "dmg",
    "exe",
    "hta",
    "img",
    "ins",
    "iso",
    "isp",
    "jar",
    "jnlp",
    "js",
    "jse",
    "lib",
    "lnk",
    "mde",
    "msc",
    "msi",
    "msix",
    "msp",
    "mst",
    "nsh",
    "pif",
    "ps1",
    "reg",
    "scr",
    "sct",
    "shb",
    "sys",
    "vb",
    "vbe",
    "vbs",
    "vhd",
    "vhdx",
    "vxd",
    "wsc",
    "wsf",
    "wsh",
    "xll",
];

/// Bytes of an entry's start that are looked at.
pub const MAGIC_LEN: usize = 64;

/// Entries of one zip archive looked at; the rest are not.
pub const MAX_ENTRIES: usize = 4096;

/// Why something is executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its name ends in such an extension (the extension).
    Name(String),
    /// Its first bytes are those of a program (what kind).
    Program(&'static str),
    /// An archive entry is one (its name, and why).
    Inside(String, Box<Why>),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Name(ext) => write!(f, "a .{ext} file"),
            Why::Program(kind) => write!(f, "a {kind}"),
            Why::Inside(name, why) => write!(f, "an archive holding {:?}, {why}", printable(name)),
        }
    }
}

/// A name as it may appear in a reply: printable ASCII, at most 100
/// characters.
pub fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect()
}

/// Whether a file name ends in an executable extension (without case;
/// trailing dots and spaces, which Windows drops, ignored).
pub fn by_name(name: &str) -> Option<Why> {
    let name = name.trim_end_matches(['.', ' ']);
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    EXTENSIONS.contains(&ext.as_str()).then_some(Why::Name(ext))
}

/// The kind of program `bytes` begin with, if any.
pub fn by_magic(bytes: &[u8]) -> Option<Why> {
    let kind = match bytes {
        // A DOS header, which every Windows PE file has.
        [b'M', b'Z', ..] => "Windows program",
        [0x7f, b'E', b'L', b'F', ..] => "Linux/Unix program (ELF)",
        [0xfe, 0xed, 0xfa, 0xce | 0xcf, ..] | [0xce | 0xcf, 0xfa, 0xed, 0xfe, ..] => {
            "macOS program (Mach-O)"
        }
        _ => return None,
    };
    Some(Why::Program(kind))
}

/// What an attachment's content says: a program, or an archive with an
/// executable entry (by name or first bytes), one level deep.
pub fn by_content(bytes: &[u8]) -> Option<Why> {
    if let Some(why) = by_magic(bytes) {
        return Some(why);
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return zip(bytes);
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return gzip(bytes);
    }
    if super::rar::is_rar(bytes) {
        return named_inside(super::rar::names(bytes));
    }
    if super::sevenz::is_7z(bytes) {
        return named_inside(super::sevenz::names(bytes));
    }
    None
}

/// The first of an archive's entry names that is executable.
fn named_inside(names: Vec<String>) -> Option<Why> {
    names
        .into_iter()
        .find_map(|n| by_name(&n).map(|why| Why::Inside(n, Box::new(why))))
}

/// The first executable entry of a zip archive, by the central
/// directory's names and each entry's first bytes.
fn zip(bytes: &[u8]) -> Option<Why> {
    let eocd = find_eocd(bytes)?;
    let entries = usize::from(u16_at(bytes, eocd + 10)?);
    let mut at = usize::try_from(u32_at(bytes, eocd + 16)?).ok()?;
    for _ in 0..entries.min(MAX_ENTRIES) {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return None;
        }
        let method = u16_at(bytes, at + 10)?;
        let compressed = usize::try_from(u32_at(bytes, at + 20)?).ok()?;
        let name_len = usize::from(u16_at(bytes, at + 28)?);
        let extra_len = usize::from(u16_at(bytes, at + 30)?);
        let comment_len = usize::from(u16_at(bytes, at + 32)?);
        let local = usize::try_from(u32_at(bytes, at + 42)?).ok()?;
        let name = bytes.get(at + 46..at + 46 + name_len)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let why = by_name(&name).or_else(|| {
            let head = entry_head(bytes, local, method, compressed)?;
            by_magic(&head)
        });
        if let Some(why) = why {
            return Some(Why::Inside(name, Box::new(why)));
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    None
}

/// The end-of-central-directory record: the last signature in the last
/// 64 KiB + 22 bytes (its comment may be that long).
fn find_eocd(bytes: &[u8]) -> Option<usize> {
    let from = bytes.len().saturating_sub(65_557);
    let tail = bytes.get(from..)?;
    tail.windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .map(|i| from + i)
}

/// The first `MAGIC_LEN` bytes of the entry whose local header is at
/// `local`: stored or deflated; other methods are not looked into.
fn entry_head(bytes: &[u8], local: usize, method: u16, compressed: usize) -> Option<Vec<u8>> {
    if u32_at(bytes, local)? != 0x0403_4b50 {
        return None;
    }
    let name_len = usize::from(u16_at(bytes, local + 26)?);
    let extra_len = usize::from(u16_at(bytes, local + 28)?);
    let start = local + 30 + name_len + extra_len;
    let data = bytes.get(start..)?;
    let data = data.get(..compressed.min(data.len()))?;
    match method {
        0 => Some(data.iter().take(MAGIC_LEN).copied().collect()),
        8 => {
            let mut head = Vec::with_capacity(MAGIC_LEN);
            let _ = flate2::read::DeflateDecoder::new(data)
                .take(MAGIC_LEN as u64)
                .read_to_end(&mut head);
            Some(head)
        }
        _ => None,
    }
}

/// A gzip member: its stored original name and its first bytes.
fn gzip(bytes: &[u8]) -> Option<Why> {
    let flags = *bytes.get(3)?;
    let name = if flags & 0x08 != 0 {
        // FNAME after the 10-byte header and FEXTRA, if present.
        let mut at = 10;
        if flags & 0x04 != 0 {
            at += 2 + usize::from(u16_at(bytes, 10)?);
        }
        let rest = bytes.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(rest.get(..end)?).into_owned())
    } else {
        None
    };
    let mut head = Vec::with_capacity(MAGIC_LEN);
    let _ = flate2::read::GzDecoder::new(bytes)
        .take(MAGIC_LEN as u64)
        .read_to_end(&mut head);
    let why = name
        .as_deref()
        .and_then(by_name)
        .or_else(|| by_magic(&head))?;
    Some(Why::Inside(
        name.unwrap_or_else(|| "(its content)".into()),
        Box::new(why),
    ))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of `files` (name, content), stored or deflated.
    pub(crate) fn zip_of(files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content) in files {
            let data = if deflate {
                let mut e =
                    flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(content).unwrap();
                e.finish().unwrap()
            } else {
                content.to_vec()
            };
            let method: u16 = if deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 8]); // time, date, crc
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(content.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&data);
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(content.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]); // extra, comment, disk, attrs
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn gzip_of(name: Option<&str>, content: &[u8]) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::fast());
        e.write_all(content).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn names() {
        for (name, bad) in [
            ("invoice.exe", true),
            ("INVOICE.PDF.EXE", true),
            ("setup.msi. ", true),
            ("run.js", true),
            ("report.pdf", false),
            ("exe", false),
            ("photo.jpeg", false),
            ("archive.zip", false),
            ("", false),
        ] {
            assert_eq!(by_name(name).is_some(), bad, "{name}");
        }
    }

    #[test]
    fn contents() {
        let pe = b"MZ\x90\x00rest of a program";
        let elf = b"\x7fELF\x02\x01\x01";
        let text = b"just some text, MZ later";
        assert_eq!(by_content(pe), Some(Why::Program("Windows program")));
        assert!(by_content(elf).is_some());
        assert!(by_content(&[0xcf, 0xfa, 0xed, 0xfe, 7]).is_some());
        assert_eq!(by_content(text), None);
        for deflate in [false, true] {
            let named = zip_of(&[("a.txt", b"hello"), ("docs/run.bat", b"echo")], deflate);
            assert_eq!(
                by_content(&named),
                Some(Why::Inside(
                    "docs/run.bat".into(),
                    Box::new(Why::Name("bat".into()))
                ))
            );
            let hidden = zip_of(&[("a.txt", b"hello"), ("picture.jpg", pe)], deflate);
            assert_eq!(
                by_content(&hidden),
                Some(Why::Inside(
                    "picture.jpg".into(),
                    Box::new(Why::Program("Windows program"))
                ))
            );
            let clean = zip_of(&[("a.txt", b"hello"), ("b.pdf", b"%PDF-1.7")], deflate);
            assert_eq!(by_content(&clean), None);
        }
        use crate::proto::rar::tests::{rar4_of, rar5_of};
        for rar in [rar5_of, rar4_of] {
            let named = rar(&[("a.txt", b"hello"), ("tools/setup.scr", b"x")]);
            assert_eq!(
                by_content(&named),
                Some(Why::Inside(
                    "tools/setup.scr".into(),
                    Box::new(Why::Name("scr".into()))
                ))
            );
            assert_eq!(by_content(&rar(&[("a.txt", b"hello")])), None);
        }
        assert!(by_content(&gzip_of(Some("tool.exe"), b"x")).is_some());
        assert!(by_content(&gzip_of(None, pe)).is_some());
        assert_eq!(by_content(&gzip_of(Some("notes.txt"), b"hello")), None);
        // A zip inside a zip is not opened (one level).
        let inner = zip_of(&[("run.exe", pe)], false);
        assert_eq!(by_content(&zip_of(&[("inner.zip", &inner)], true)), None);
    }

    /// Damaged archives are judged on what can be read, never a panic.
    #[test]
    fn damaged_archives() {
        let pe = b"MZ\x90\x00rest of a program";
        let good = zip_of(&[("a.txt", b"hello"), ("picture.jpg", pe)], true);
        for cut in 0..good.len() {
            let _ = by_content(good.get(..cut).unwrap());
        }
        let mut bad_offset = good.clone();
        let n = bad_offset.len();
        bad_offset[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(by_content(&bad_offset), None);
        let g = gzip_of(Some("x.exe"), b"x");
        for cut in 0..g.len() {
            let _ = by_content(g.get(..cut).unwrap());
        }
    }
}
