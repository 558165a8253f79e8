//! Reading and writing the policy section of a WebAssembly module.
//!
//! Why a custom section: a module cannot read its own custom sections, but
//! every host can (`WebAssembly.Module.customSections` in JS, a section walk
//! here for wasmtime). Appending one is a byte copy: baking new policies into
//! the engine needs no compiler, and the module's sha256 covers both.

use crate::bundle::SECTION_NAME;

const MAGIC: &[u8; 8] = b"\0asm\x01\0\0\0";

fn read_leb(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        result |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

fn write_leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// One section: its id, the whole byte range, and the custom name if any.
struct Section<'a> {
    range: std::ops::Range<usize>,
    custom: Option<(&'a [u8], &'a [u8])>,
}

fn sections(module: &[u8]) -> Result<Vec<Section<'_>>, String> {
    if module.get(..8) != Some(MAGIC.as_slice()) {
        return Err("not a WebAssembly module (bad magic or version)".into());
    }
    let mut out = Vec::new();
    let mut pos = 8;
    while pos < module.len() {
        let start = pos;
        let id = module[pos];
        pos += 1;
        let size = read_leb(module, &mut pos).ok_or("truncated section header")? as usize;
        let end = pos
            .checked_add(size)
            .filter(|e| *e <= module.len())
            .ok_or("truncated section")?;
        let custom = if id == 0 {
            let mut p = pos;
            let name_len =
                read_leb(module, &mut p).ok_or("truncated custom section name")? as usize;
            let name_end = p
                .checked_add(name_len)
                .filter(|e| *e <= end)
                .ok_or("bad custom section name")?;
            Some((&module[p..name_end], &module[name_end..end]))
        } else {
            None
        };
        out.push(Section {
            range: start..end,
            custom,
        });
        pos = end;
    }
    Ok(out)
}

/// The payload of the module's `gatehouse.policies` section.
pub fn policy_section(module: &[u8]) -> Result<&[u8], String> {
    sections(module)?
        .into_iter()
        .find_map(|s| s.custom.filter(|(name, _)| *name == SECTION_NAME.as_bytes()).map(|(_, p)| p))
        .ok_or_else(|| format!("the module has no `{SECTION_NAME}` section: bake policies into it with `cargo xtask wasm`"))
}

/// The module with its `gatehouse.policies` section replaced by `payload`
/// (appended as the last section).
pub fn with_policy_section(module: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(module.len() + payload.len() + 32);
    out.extend_from_slice(MAGIC);
    for s in sections(module)? {
        if s.custom
            .is_some_and(|(name, _)| name == SECTION_NAME.as_bytes())
        {
            continue;
        }
        out.extend_from_slice(&module[s.range]);
    }
    let mut body = Vec::with_capacity(payload.len() + 24);
    write_leb(&mut body, SECTION_NAME.len());
    body.extend_from_slice(SECTION_NAME.as_bytes());
    body.extend_from_slice(payload);
    out.push(0);
    write_leb(&mut out, body.len());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_round_trips_and_is_replaced_not_duplicated() {
        let empty = MAGIC.to_vec();
        assert!(policy_section(&empty).is_err());
        let big = vec![7u8; 300];
        let once = with_policy_section(&empty, &big).unwrap();
        assert_eq!(policy_section(&once).unwrap(), big.as_slice());
        let twice = with_policy_section(&once, b"new").unwrap();
        assert_eq!(policy_section(&twice).unwrap(), b"new");
        assert_eq!(twice.len(), 8 + 1 + 1 + 1 + SECTION_NAME.len() + 3);
    }

    #[test]
    fn rejects_what_is_not_a_module() {
        assert!(policy_section(b"hello world").is_err());
        let mut truncated = with_policy_section(MAGIC, b"abc").unwrap();
        truncated.pop();
        assert!(policy_section(&truncated).is_err());
    }
}
