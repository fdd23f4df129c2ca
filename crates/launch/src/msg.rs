//! A fixed-size, allocation-free byte buffer for messages built in the
//! container child (after fork the child must not touch the allocator).

/// Up to [`MsgBuf::CAP`] bytes; longer input is cut silently.
pub(crate) struct MsgBuf {
    buf: [u8; MsgBuf::CAP],
    len: usize,
}

impl MsgBuf {
    pub const CAP: usize = 480;

    pub fn new() -> Self {
        MsgBuf {
            buf: [0; Self::CAP],
            len: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(Self::CAP - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_appends_and_truncates_at_capacity() {
        let mut m = MsgBuf::new();
        m.push(b"mount ").push(b"/proc");
        assert_eq!(m.as_bytes(), b"mount /proc");
        m.push(&[b'x'; 1000]);
        assert_eq!(m.as_bytes().len(), MsgBuf::CAP);
    }
}
