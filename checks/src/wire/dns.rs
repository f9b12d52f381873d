//! DNS messages (RFC 1035), as much as a health check needs: a one-question query out, and
//! of the reply the header and the types of the answer records.

use super::WireError;

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const CLASS_IN: u16 = 1;

/// A borrowed view of a DNS message with checked header access.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn u16_at(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    pub fn id(&self) -> u16 {
        self.u16_at(0)
    }
    pub fn flags(&self) -> u16 {
        self.u16_at(2)
    }
    pub fn is_response(&self) -> bool {
        self.flags() & FLAG_QR != 0
    }
    pub fn truncated(&self) -> bool {
        self.flags() & FLAG_TC != 0
    }
    pub fn rcode(&self) -> u8 {
        (self.flags() & 0x000f) as u8
    }
    pub fn question_count(&self) -> u16 {
        self.u16_at(4)
    }
    pub fn answer_count(&self) -> u16 {
        self.u16_at(6)
    }
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

/// A query for one name and type, class IN, recursion desired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub name: String,
    pub record_type: u16,
}

impl Query {
    fn labels(&self) -> impl Iterator<Item = &str> {
        self.name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.labels().map(|l| 1 + l.len()).sum::<usize>() + 1 + 4
    }

    pub fn emit(&self, packet: &mut Packet<&mut [u8]>) -> Result<(), WireError> {
        if self.labels().any(|l| l.len() > 63) {
            return Err(WireError::LabelTooLong);
        }
        packet.set_u16(0, self.id);
        packet.set_u16(2, FLAG_RD);
        packet.set_u16(4, 1);
        packet.set_u16(6, 0);
        packet.set_u16(8, 0);
        packet.set_u16(10, 0);
        let buf = &mut packet.buffer[HEADER_LEN..];
        let mut at = 0;
        for label in self.labels() {
            buf[at] = label.len() as u8;
            buf[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
            at += 1 + label.len();
        }
        buf[at] = 0;
        buf[at + 1..at + 3].copy_from_slice(&self.record_type.to_be_bytes());
        buf[at + 3..at + 5].copy_from_slice(&CLASS_IN.to_be_bytes());
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]))?;
        Ok(bytes)
    }
}

/// What a health check learns from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    /// The type of every answer record, in order.
    pub answer_types: Vec<u16>,
}

impl Reply {
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Reply, WireError> {
        if !packet.is_response() {
            return Err(WireError::NotAReply);
        }
        let body = packet.body();
        let mut at = 0;
        for _ in 0..packet.question_count() {
            at = skip_name(body, at)? + 4;
        }
        let mut answer_types = Vec::new();
        for _ in 0..packet.answer_count() {
            at = skip_name(body, at)?;
            let fixed = body.get(at..at + 10).ok_or(WireError::Truncated)?;
            answer_types.push(u16::from_be_bytes([fixed[0], fixed[1]]));
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            at += 10 + rdlen;
            if at > body.len() {
                return Err(WireError::Truncated);
            }
        }
        Ok(Reply {
            id: packet.id(),
            rcode: packet.rcode(),
            truncated: packet.truncated(),
            answer_types,
        })
    }
}

/// The offset after the name at `at`; a compression pointer ends a name in two bytes.
fn skip_name(body: &[u8], mut at: usize) -> Result<usize, WireError> {
    loop {
        let len = *body.get(at).ok_or(WireError::Truncated)?;
        match len {
            0 => return Ok(at + 1),
            l if l & 0xc0 == 0xc0 => {
                body.get(at + 1).ok_or(WireError::Truncated)?;
                return Ok(at + 2);
            }
            l if l & 0xc0 != 0 => return Err(WireError::BadLabel),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for example.org A, id 0x1234, RD set: the RFC 1035 section 4.1 layout by hand.
    const QUERY: [u8; 29] = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, b'e', b'x',
        b'a', b'm', b'p', b'l', b'e', 0x03, b'o', b'r', b'g', 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn emits_a_standard_query() {
        let query = Query {
            id: 0x1234,
            name: "example.org.".into(),
            record_type: 1,
        };
        assert_eq!(query.buffer_len(), QUERY.len());
        assert_eq!(query.to_bytes().unwrap(), QUERY);
    }

    #[test]
    fn parses_a_reply_with_a_compressed_answer() {
        let mut reply = QUERY.to_vec();
        reply[2] = 0x81;
        reply[3] = 0x80;
        reply[7] = 1;
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 7]);
        let parsed = Reply::parse(&Packet::new_checked(&reply[..]).unwrap()).unwrap();
        assert_eq!(
            parsed,
            Reply {
                id: 0x1234,
                rcode: 0,
                truncated: false,
                answer_types: vec![1]
            }
        );
    }

    #[test]
    fn refuses_short_queries_and_bad_records() {
        assert_eq!(
            Packet::new_checked(&QUERY[..11]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Reply::parse(&Packet::new_checked(&QUERY[..]).unwrap()).unwrap_err(),
            WireError::NotAReply
        );
        let mut reply = QUERY.to_vec();
        reply[2] = 0x81;
        reply[7] = 1;
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(
            Reply::parse(&Packet::new_checked(&reply[..]).unwrap()).unwrap_err(),
            WireError::Truncated
        );
        let long = Query {
            id: 1,
            name: "x".repeat(64),
            record_type: 1,
        };
        assert_eq!(long.to_bytes().unwrap_err(), WireError::LabelTooLong);
    }
}
