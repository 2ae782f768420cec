//! RAR archives, versions 4 and 5: the names of the files they hold, read
//! from their block headers (the files themselves are not unpacked). The
//! MX looks for executables among them (`executable`).
//!
//! Imports nothing of ours. Invariants: total over any bytes; at most
//! `MAX_NAMES` names, each block header read within the input; an archive
//! whose headers are encrypted yields the names before them (none).

/// Names read of one archive.
pub const MAX_NAMES: usize = 4096;

const RAR5: &[u8] = b"Rar!\x1a\x07\x01\x00";
const RAR4: &[u8] = b"Rar!\x1a\x07\x00";

/// Whether `bytes` start like a RAR archive.
pub fn is_rar(bytes: &[u8]) -> bool {
    bytes.starts_with(RAR5) || bytes.starts_with(RAR4)
}

/// The file names in a RAR archive, in order.
pub fn names(bytes: &[u8]) -> Vec<String> {
    if bytes.starts_with(RAR5) {
        rar5(bytes).unwrap_or_default()
    } else if bytes.starts_with(RAR4) {
        rar4(bytes).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// A RAR 5 variable-length integer at `at`: its value and length.
fn vint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *bytes.get(at.checked_add(i)?)?;
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Reads a header's fields in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn vint(&mut self) -> Option<u64> {
        let (v, n) = vint(self.bytes, self.at)?;
        self.at += n;
        Some(v)
    }
}

fn rar5(bytes: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut at = RAR5.len();
    while names.len() < MAX_NAMES && at < bytes.len() {
        // CRC32, then the header's size and the header.
        let (size, n) = vint(bytes, at.checked_add(4)?)?;
        let start = at.checked_add(4 + n)?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let mut h = Cursor {
            bytes: bytes.get(start..end)?,
            at: 0,
        };
        let kind = h.vint()?;
        let flags = h.vint()?;
        if flags & 0x01 != 0 {
            h.vint()?; // extra area size
        }
        let data = if flags & 0x02 != 0 { h.vint()? } else { 0 };
        match kind {
            // A file.
            2 => {
                let file_flags = h.vint()?;
                h.vint()?; // unpacked size
                h.vint()?; // attributes
                if file_flags & 0x02 != 0 {
                    h.at += 4; // modification time
                }
                if file_flags & 0x04 != 0 {
                    h.at += 4; // CRC32
                }
                h.vint()?; // compression
                h.vint()?; // host OS
                let len = usize::try_from(h.vint()?).ok()?;
                let name = h.bytes.get(h.at..h.at.checked_add(len)?)?;
                names.push(String::from_utf8_lossy(name).into_owned());
            }
            // Encrypted headers follow, or the end.
            4 | 5 => break,
            _ => {}
        }
        at = end.checked_add(usize::try_from(data).ok()?)?;
    }
    Some(names)
}

fn rar4(bytes: &[u8]) -> Option<Vec<String>> {
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes([
            *bytes.get(at)?,
            *bytes.get(at + 1)?,
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]))
    };
    let mut names = Vec::new();
    let mut at = RAR4.len();
    while names.len() < MAX_NAMES && at < bytes.len() {
        let kind = *bytes.get(at.checked_add(2)?)?;
        let flags = u16_at(at + 3)?;
        let size = usize::from(u16_at(at + 5)?);
        if size < 7 {
            break;
        }
        let mut add = if flags & 0x8000 != 0 {
            u64::from(u32_at(at + 7)?)
        } else {
            0
        };
        match kind {
            // The archive header: block headers encrypted from here on.
            0x73 if flags & 0x0080 != 0 => break,
            // A file.
            0x74 => {
                let mut packed = u64::from(u32_at(at + 7)?);
                let name_len = usize::from(u16_at(at + 26)?);
                let mut name_at = at + 32;
                if flags & 0x0100 != 0 {
                    packed |= u64::from(u32_at(at + 32)?) << 32;
                    name_at += 8;
                }
                let name = bytes.get(name_at..name_at.checked_add(name_len)?)?;
                // A Unicode name follows the plain one after a NUL.
                let plain = name.split(|&b| b == 0).next().unwrap_or_default();
                names.push(String::from_utf8_lossy(plain).into_owned());
                add = packed;
            }
            // The end of the archive.
            0x7b => break,
            _ => {}
        }
        at = at
            .checked_add(size)?
            .checked_add(usize::try_from(add).ok()?)?;
    }
    Some(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn vint_of(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// A RAR 5 archive of `files`, stored, written from the format's
    /// description (CRCs left zero: the reader does not check them).
    pub(crate) fn rar5_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = RAR5.to_vec();
        let block = |out: &mut Vec<u8>, body: Vec<u8>, data: &[u8]| {
            out.extend_from_slice(&[0; 4]);
            out.extend(vint_of(body.len() as u64));
            out.extend(body);
            out.extend_from_slice(data);
        };
        // The main archive header: type 1, no flags, archive flags 0.
        block(&mut out, vec![1, 0, 0], &[]);
        for (name, data) in files {
            let mut body = vec![2, 0x02];
            body.extend(vint_of(data.len() as u64));
            body.extend([0x04]); // file flags: CRC32 present
            body.extend(vint_of(data.len() as u64));
            body.push(0x20); // attributes
            body.extend_from_slice(&[0; 4]);
            body.extend([0, 1]); // compression: stored; host: Unix
            body.extend(vint_of(name.len() as u64));
            body.extend_from_slice(name.as_bytes());
            block(&mut out, body, data);
        }
        block(&mut out, vec![5, 0, 0], &[]);
        out
    }

    /// A RAR 4 archive of `files`, stored, likewise.
    pub(crate) fn rar4_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = RAR4.to_vec();
        out.extend_from_slice(&[0, 0, 0x73, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
        for (name, data) in files {
            let size = 32 + name.len();
            let mut h = vec![0, 0, 0x74];
            h.extend_from_slice(&0x8000u16.to_le_bytes());
            h.extend_from_slice(&(size as u16).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.push(3); // host: Unix
            h.extend_from_slice(&[0; 8]); // CRC, time
            h.extend_from_slice(&[20, 0x30]); // version, method: stored
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&[0; 4]); // attributes
            h.extend_from_slice(name.as_bytes());
            out.extend(h);
            out.extend_from_slice(data);
        }
        out.extend_from_slice(&[0, 0, 0x7b, 0, 0x40, 7, 0]);
        out
    }

    #[test]
    fn names_of_both_versions() {
        let files: &[(&str, &[u8])] = &[("docs/readme.txt", b"hello"), ("tools/setup.exe", b"MZ")];
        for archive in [rar5_of(files), rar4_of(files)] {
            assert!(is_rar(&archive));
            assert_eq!(names(&archive), vec!["docs/readme.txt", "tools/setup.exe"]);
        }
        assert!(names(b"Rar!\x1a\x07\x01\x00\xff\xff").is_empty());
        assert!(!is_rar(b"PK\x03\x04"));
    }

    #[test]
    fn damaged_archives_give_what_could_be_read() {
        let archive = rar5_of(&[("a.txt", b"x"), ("b.exe", b"y")]);
        for cut in 0..archive.len() {
            let got = names(&archive[..cut]);
            assert!(got.len() <= 2);
        }
        let seeds: &[&[u8]] = &[&archive, &rar4_of(&[("a.txt", b"x")])];
        for m in crate::proto::mutations(seeds, &[0x00, 0x80, 0xff, 0x74, 0x02], 23, 3000) {
            assert!(names(&m).len() <= MAX_NAMES);
        }
    }
}
