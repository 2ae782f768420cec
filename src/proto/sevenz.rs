//! 7z archives: the names of the files they hold, read from the archive's
//! header (the files themselves are not unpacked). 7-Zip compresses that
//! header by default (an "encoded header", LZMA or LZMA2); it is then
//! decompressed, up to `MAX_HEADER` bytes, with lzma-rs. The MX looks for
//! executables among the names (`executable`).
//!
//! Imports nothing of ours (lzma-rs). Invariants: total over any bytes;
//! every count and size is checked against what is left of the input
//! before use; at most `MAX_NAMES` names; a header that would decompress
//! past `MAX_HEADER`, uses another method, or is encrypted yields no
//! names.

/// Names read of one archive.
pub const MAX_NAMES: usize = 4096;

/// An encoded header is decompressed up to this size.
pub const MAX_HEADER: usize = 1 << 20;

const SIGNATURE: &[u8] = b"7z\xbc\xaf\x27\x1c";

// Property ids (7-Zip's 7zFormat.txt).
const END: u8 = 0x00;
const HEADER: u8 = 0x01;
const ARCHIVE_PROPERTIES: u8 = 0x02;
const ADDITIONAL_STREAMS: u8 = 0x03;
const MAIN_STREAMS: u8 = 0x04;
const FILES_INFO: u8 = 0x05;
const PACK_INFO: u8 = 0x06;
const UNPACK_INFO: u8 = 0x07;
const SUBSTREAMS_INFO: u8 = 0x08;
const SIZE: u8 = 0x09;
const CRC: u8 = 0x0a;
const FOLDER: u8 = 0x0b;
const CODERS_UNPACK_SIZE: u8 = 0x0c;
const NUM_UNPACK_STREAM: u8 = 0x0d;
const NAME: u8 = 0x11;
const ENCODED_HEADER: u8 = 0x17;

/// Whether `bytes` start like a 7z archive.
pub fn is_7z(bytes: &[u8]) -> bool {
    bytes.starts_with(SIGNATURE)
}

/// The file names in a 7z archive, in order.
pub fn names(bytes: &[u8]) -> Vec<String> {
    header(bytes).and_then(|h| files(&h)).unwrap_or_default()
}

/// The archive's header, decompressed when it was encoded.
fn header(bytes: &[u8]) -> Option<Vec<u8>> {
    if !is_7z(bytes) {
        return None;
    }
    let offset = u64_at(bytes, 12)?;
    let size = u64_at(bytes, 20)?;
    let start = 32usize.checked_add(usize::try_from(offset).ok()?)?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    let raw = bytes.get(start..end)?;
    match *raw.first()? {
        HEADER => Some(raw.to_vec()),
        ENCODED_HEADER => {
            let mut r = Reader { b: raw, at: 1 };
            let info = streams(&mut r)?;
            let folder = info.folders.first()?;
            let pack_at = 32usize.checked_add(usize::try_from(info.pack_pos).ok()?)?;
            let pack_len = usize::try_from(*info.pack_sizes.first()?).ok()?;
            let packed = bytes.get(pack_at..pack_at.checked_add(pack_len)?)?;
            let unpacked = usize::try_from(*folder.unpack_sizes.last()?).ok()?;
            if unpacked > MAX_HEADER || folder.coders.len() != 1 {
                return None;
            }
            let decoded = decode(folder.coders.first()?, packed, unpacked)?;
            (decoded.first() == Some(&HEADER)).then_some(decoded)
        }
        _ => None,
    }
}

/// One coder of a folder: its method id and properties.
struct Coder {
    id: Vec<u8>,
    props: Vec<u8>,
}

struct Folder {
    coders: Vec<Coder>,
    unpack_sizes: Vec<u64>,
    crc_defined: bool,
}

#[derive(Default)]
struct Streams {
    pack_pos: u64,
    pack_sizes: Vec<u64>,
    folders: Vec<Folder>,
}

fn decode(coder: &Coder, packed: &[u8], unpacked: usize) -> Option<Vec<u8>> {
    let mut out = Bounded(Vec::with_capacity(unpacked));
    match coder.id.as_slice() {
        // LZMA: 5 bytes of properties, then the raw stream.
        [0x03, 0x01, 0x01] => {
            let mut input = coder.props.get(..5)?.to_vec();
            input.extend_from_slice(packed);
            let options = lzma_rs::decompress::Options {
                unpacked_size: lzma_rs::decompress::UnpackedSize::UseProvided(Some(
                    unpacked as u64,
                )),
                memlimit: Some(MAX_HEADER),
                allow_incomplete: false,
            };
            lzma_rs::lzma_decompress_with_options(&mut &input[..], &mut out, &options).ok()?;
        }
        // LZMA2 (its property byte, the dictionary size, is not needed).
        [0x21] => lzma_rs::lzma2_decompress(&mut &packed[..], &mut out).ok()?,
        // Stored.
        [0x00] => out.0.extend_from_slice(packed),
        _ => return None,
    }
    Some(out.0)
}

/// A sink that refuses to grow past `MAX_HEADER` bytes.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_HEADER {
            return Err(std::io::Error::other("7z header over the limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The names of the FilesInfo of a (decoded) header.
fn files(h: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader { b: h, at: 1 };
    let mut id = r.byte()?;
    if id == ARCHIVE_PROPERTIES {
        loop {
            let kind = r.byte()?;
            if kind == END {
                break;
            }
            let size = r.number()?;
            r.skip(size)?;
        }
        id = r.byte()?;
    }
    if id == ADDITIONAL_STREAMS {
        streams(&mut r)?;
        id = r.byte()?;
    }
    if id == MAIN_STREAMS {
        streams(&mut r)?;
        id = r.byte()?;
    }
    if id != FILES_INFO {
        return Some(Vec::new());
    }
    let count = r.count()?;
    loop {
        let kind = r.byte()?;
        if kind == END {
            return Some(Vec::new());
        }
        let size = usize::try_from(r.number()?).ok()?;
        let data = r.take(size)?;
        if kind != NAME {
            continue;
        }
        // External flag, then NUL-terminated UTF-16LE names.
        let (&external, text) = data.split_first()?;
        if external != 0 {
            return None;
        }
        let units: Vec<u16> = text
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().unwrap_or([0, 0])))
            .collect();
        return Some(
            units
                .split(|&u| u == 0)
                .take(count.min(MAX_NAMES))
                .map(String::from_utf16_lossy)
                .collect(),
        );
    }
}

/// A StreamsInfo, read just after its property id.
fn streams(r: &mut Reader<'_>) -> Option<Streams> {
    let mut s = Streams::default();
    loop {
        match r.byte()? {
            END => return Some(s),
            PACK_INFO => {
                s.pack_pos = r.number()?;
                let n = r.count()?;
                loop {
                    match r.byte()? {
                        END => break,
                        SIZE => {
                            for _ in 0..n {
                                s.pack_sizes.push(r.number()?);
                            }
                        }
                        CRC => {
                            r.digests(n)?;
                        }
                        _ => return None,
                    }
                }
            }
            UNPACK_INFO => {
                if r.byte()? != FOLDER {
                    return None;
                }
                let n = r.count()?;
                if r.byte()? != 0 {
                    return None; // external
                }
                let mut outs = Vec::with_capacity(n);
                for _ in 0..n {
                    let (folder, out_streams) = folder(r)?;
                    s.folders.push(folder);
                    outs.push(out_streams);
                }
                if r.byte()? != CODERS_UNPACK_SIZE {
                    return None;
                }
                for (f, &out_streams) in s.folders.iter_mut().zip(&outs) {
                    for _ in 0..out_streams {
                        f.unpack_sizes.push(r.number()?);
                    }
                }
                loop {
                    match r.byte()? {
                        END => break,
                        CRC => {
                            let defined = r.digests(n)?;
                            for (f, d) in s.folders.iter_mut().zip(defined) {
                                f.crc_defined = d;
                            }
                        }
                        _ => return None,
                    }
                }
            }
            SUBSTREAMS_INFO => {
                let mut per_folder = vec![1usize; s.folders.len()];
                let mut id = r.byte()?;
                if id == NUM_UNPACK_STREAM {
                    for n in per_folder.iter_mut() {
                        *n = r.count()?;
                    }
                    id = r.byte()?;
                }
                if id == SIZE {
                    for &n in &per_folder {
                        for _ in 1..n {
                            r.number()?;
                        }
                    }
                    id = r.byte()?;
                }
                let unknown: usize = per_folder
                    .iter()
                    .zip(&s.folders)
                    .map(|(&n, f)| if n == 1 && f.crc_defined { 0 } else { n })
                    .sum();
                loop {
                    match id {
                        END => break,
                        CRC => {
                            r.digests(unknown)?;
                        }
                        _ => return None,
                    }
                    id = r.byte()?;
                }
            }
            _ => return None,
        }
    }
}

/// A Folder: its coders, and how many streams it puts out.
fn folder(r: &mut Reader<'_>) -> Option<(Folder, usize)> {
    let n = r.count()?;
    let (mut ins, mut outs) = (0usize, 0usize);
    let mut coders = Vec::with_capacity(n.min(4));
    for _ in 0..n {
        let flags = r.byte()?;
        let id = r.take(usize::from(flags & 0x0f))?.to_vec();
        if flags & 0x10 != 0 {
            ins = ins.checked_add(r.count()?)?;
            outs = outs.checked_add(r.count()?)?;
        } else {
            ins += 1;
            outs += 1;
        }
        let props = if flags & 0x20 != 0 {
            let size = usize::try_from(r.number()?).ok()?;
            r.take(size)?.to_vec()
        } else {
            Vec::new()
        };
        coders.push(Coder { id, props });
    }
    let pairs = outs.checked_sub(1)?;
    for _ in 0..pairs {
        r.number()?;
        r.number()?;
    }
    let packed = ins.checked_sub(pairs)?;
    if packed > 1 {
        for _ in 0..packed {
            r.number()?;
        }
    }
    Some((
        Folder {
            coders,
            unpack_sizes: Vec::new(),
            crc_defined: false,
        },
        outs,
    ))
}

/// Reads a header's fields in order.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.b.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        self.take(usize::try_from(n).ok()?).map(|_| ())
    }

    /// 7z's NUMBER: the first byte's leading ones count the bytes that
    /// follow (little-endian), its other bits are the highest ones.
    fn number(&mut self) -> Option<u64> {
        let first = self.byte()?;
        let mut mask = 0x80u8;
        let mut value = 0u64;
        for i in 0..8 {
            if first & mask == 0 {
                let high = u64::from(first & mask.wrapping_sub(1));
                return Some(value | (high << (8 * i)));
            }
            value |= u64::from(self.byte()?) << (8 * i);
            mask >>= 1;
        }
        Some(value)
    }

    /// A count that must fit in what is left of the input.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.number()?).ok()?;
        (n <= self.b.len()).then_some(n)
    }

    /// Digests of `n` items: which are defined (all, or a bit vector),
    /// then a CRC32 for each defined one.
    fn digests(&mut self, n: usize) -> Option<Vec<bool>> {
        if n > self.b.len() {
            return None;
        }
        let defined = if self.byte()? != 0 {
            vec![true; n]
        } else {
            let bits = self.take(n.div_ceil(8))?;
            (0..n)
                .map(|i| bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0))
                .collect()
        };
        let count = defined.iter().filter(|d| **d).count();
        self.take(count.checked_mul(4)?)?;
        Some(defined)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let table: &[(&[u8], u64)] = &[
            (&[0x05], 5),
            (&[0x7f], 127),
            (&[0x80, 0x80], 128),
            (&[0x81, 0x00], 256),
            (&[0xc0, 0x00, 0x01], 256),
            (&[0xc1, 0x00, 0x00], 65_536),
            (&[0xff, 1, 0, 0, 0, 0, 0, 0, 0], 1),
        ];
        for (bytes, want) in table {
            let mut r = Reader { b: bytes, at: 0 };
            assert_eq!(r.number(), Some(*want), "{bytes:?}");
            assert_eq!(r.at, bytes.len());
        }
    }

    /// Archives of readme.txt and setup.exe made by 7-Zip (`7zz a`): with
    /// its default LZMA-encoded header, and with `-mhc=off`.
    const ENCODED: &str = "377abcaf271c0004735aad097b0000000000000020000000000000005e641aeb01000d68690a4d5a900070726f6772616d000000813307ae0fcf16310c07c8437f41b1fafddf5fe53bd646d81b5fc938299793592fe4676e2a25c6249fa7e530230969fddf327f890be1b3c304baab89a6200448898cb33f575e0804a1304d498fad04e9ee2659fbe0a6db401e748a1ac42df2174013c47800000017061201096900070b01000123030101055d001000000c7e0a011b798f140000";
    const PLAIN: &str = "377abcaf271c000476c75f9212000000000000007e000000000000001b798f1401000d68690a4d5a900070726f6772616d000104060001091200070b010001212101000c0e00080d0209030a017a7a6fed4119791d00000502190400000000112b0072006500610064006d0065002e007400780074000000730065007400750070002e006500780065000000190014120100b7f3e4917882dd01b7f3e4917882dd01150a01002080a4812080a4810000";

    #[test]
    fn names_from_real_archives() {
        for hex_archive in [ENCODED, PLAIN] {
            let archive = hex::decode(hex_archive).unwrap();
            assert!(is_7z(&archive));
            assert_eq!(names(&archive), vec!["readme.txt", "setup.exe"]);
            for cut in 0..archive.len() {
                assert!(names(&archive[..cut]).len() <= 2);
            }
        }
        let seeds: Vec<Vec<u8>> = [ENCODED, PLAIN]
            .iter()
            .map(|h| hex::decode(h).unwrap())
            .collect();
        let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
        for m in crate::proto::mutations(&seeds, &[0x00, 0x80, 0xff, 0x17, 0x01], 29, 3000) {
            assert!(names(&m).len() <= MAX_NAMES);
        }
    }

    #[test]
    fn not_7z_or_cut_short() {
        assert!(names(b"7z\xbc\xaf\x27\x1c\x00\x04").is_empty());
        assert!(names(b"PK\x03\x04").is_empty());
        let mut start = SIGNATURE.to_vec();
        start.extend_from_slice(&[0, 4, 0, 0, 0, 0]);
        start.extend_from_slice(&u64::MAX.to_le_bytes());
        start.extend_from_slice(&8u64.to_le_bytes());
        start.extend_from_slice(&[0; 4]);
        assert!(names(&start).is_empty());
    }
}
