//! Compression sniffing: layers arrive plain, gzipped or zstd-compressed and
//! say which only through their first bytes.

use std::io::{self, Chain, Cursor, Read};

/// How a layer stream was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// Sniffs the magic bytes of `r` and returns a reader of the decompressed stream.
pub fn decompress<R: Read + Send + 'static>(
    r: R,
) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let decoder = Decoder::new(r)?;
    Ok((decoder.compression(), Box::new(decoder)))
}

/// How a stream starting with `head` (at least 4 bytes unless the stream
/// is shorter) is compressed.
pub fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

type Sniffed<R> = Chain<Cursor<Vec<u8>>, R>;

/// The decompressing reader without boxing, so `apply_layer` needs no `Send + 'static`.
pub(crate) enum Decoder<R: Read> {
    Plain(Sniffed<R>),
    Gzip(Box<flate2::read::MultiGzDecoder<Sniffed<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, io::BufReader<Sniffed<R>>>>),
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(mut r: R) -> io::Result<Self> {
        let mut head = [0u8; 4];
        let mut n = 0;
        // A short read must not be mistaken for a short stream: loop until EOF.
        while n < head.len() {
            match r.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let head = &head[..n];
        let src = Cursor::new(head.to_vec()).chain(r);
        Ok(if head.starts_with(GZIP_MAGIC) {
            Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(src)))
        } else if head.starts_with(ZSTD_MAGIC) {
            Decoder::Zstd(Box::new(zstd::stream::read::Decoder::new(src)?))
        } else {
            Decoder::Plain(src)
        })
    }

    pub(crate) fn compression(&self) -> Compression {
        match self {
            Decoder::Plain(_) => Compression::None,
            Decoder::Gzip(_) => Compression::Gzip,
            Decoder::Zstd(_) => Compression::Zstd,
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compressed: Vec<u8>, expect: Compression, plain: &[u8]) {
        let (c, mut r) = decompress(Cursor::new(compressed)).unwrap();
        assert_eq!(c, expect);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn sniffs_plain_gzip_zstd_and_tiny_inputs() {
        let data = b"hello layer".repeat(100);
        roundtrip(data.clone(), Compression::None, &data);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(gz.finish().unwrap(), Compression::Gzip, &data);
        roundtrip(
            zstd::encode_all(&data[..], 1).unwrap(),
            Compression::Zstd,
            &data,
        );
        roundtrip(vec![0x1f], Compression::None, &[0x1f]);
        roundtrip(Vec::new(), Compression::None, &[]);
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let data = vec![7u8; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let mut gz = gz.finish().unwrap();
        gz.truncate(gz.len() / 2);
        let (_, mut r) = decompress(Cursor::new(gz)).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
