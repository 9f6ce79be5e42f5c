//! Slow, obviously correct versions of what the fuzz targets check udpcat against.

/// Hex decoding the simple way: separators anywhere between bytes, two digits a byte.
pub fn reference_hex(raw: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c.is_ascii_whitespace() || c == b':' {
            i += 1;
            continue;
        }
        let hi = digit(c)?;
        let lo = digit(*raw.get(i + 1)?)?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    Some(out)
}
