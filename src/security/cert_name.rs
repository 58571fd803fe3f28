//! The subject common name (CN) of an X.509 certificate, read with a minimal DER walk: the
//! mTLS principal is `User:<CN>` (Kafka's default mapping would give the whole DN).

/// Deepest nesting walked; certificates need 4.
const DEPTH_MAX: usize = 8;
/// The OID 2.5.4.3 (commonName), DER-encoded.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_OID: u8 = 0x06;
const TAG_EXPLICIT_0: u8 = 0xa0;

/// One DER element: (tag, contents, rest).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((tag, &rest[..length], &rest[length..]))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(input)?;
    (found == tag).then_some((contents, rest))
}

/// The subject CN of a DER certificate, if it has one.
pub fn subject_common_name(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(certificate, TAG_SEQUENCE)?;
    let (tbs, _) = expect(certificate, TAG_SEQUENCE)?;
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity, subject.
    if let Some((TAG_EXPLICIT_0, _, after)) = element(rest) {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (subject, _) = expect(rest, TAG_SEQUENCE)?;
    let mut names = subject;
    let mut common_name = None;
    for _ in 0..DEPTH_MAX * 8 {
        if names.is_empty() {
            break;
        }
        let (set, after) = expect(names, TAG_SET)?;
        names = after;
        let (attribute, _) = expect(set, TAG_SEQUENCE)?;
        let (oid, value) = expect(attribute, TAG_OID)?;
        if oid == OID_COMMON_NAME {
            let (_, text, _) = element(value)?;
            common_name = Some(String::from_utf8_lossy(text).into_owned());
        }
    }
    common_name
}
