//! Just enough ELF reading for two questions the loader and the swap path ask about a plugin file
//! before and after `dlopen`, without `unsafe` and without a parsing dependency:
//!
//! - is the file complete? A truncated library still starts with a valid ELF header, and
//!   `dlopen` maps segments past the end of the file: the first access to them raises SIGBUS and
//!   takes the whole host down. [`check_complete`] compares what the headers describe with the
//!   file's length.
//! - why might a closed library stay mapped? [`dynamic_symbols`] lists the dynamic symbol table,
//!   where imports such as `__cxa_thread_atexit_impl` (thread-local destructors) and
//!   `STB_GNU_UNIQUE` definitions (which make glibc mark a library NODELETE) show up.
//!
//!
//! And one about the host itself: [`build_id`], the GNU build id that names one build of a
//! binary (the key under which a plugin's passed layout check is remembered).
//!
//! Only 64-bit little-endian files (x86-64, aarch64: what Berth targets) are inspected in depth;
//! other files pass [`check_complete`] and leave the verdict to `dlopen`.

/// `PT_LOAD`: a segment mapped from the file.
const PT_LOAD: u32 = 1;
/// `PT_NOTE`: a segment of notes.
const PT_NOTE: u32 = 4;
/// `NT_GNU_BUILD_ID`: the note holding the build id.
const NT_GNU_BUILD_ID: u32 = 3;
/// `SHT_DYNSYM`: the dynamic symbol table.
const SHT_DYNSYM: u32 = 11;
/// `STB_GNU_UNIQUE`: a symbol binding that keeps a library loaded for the life of the process.
const STB_GNU_UNIQUE: u8 = 10;

/// One entry of the dynamic symbol table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicSymbol {
    pub name: String,
    /// False for an import (`st_shndx == SHN_UNDEF`).
    pub defined: bool,
    /// `STB_GNU_UNIQUE` binding.
    pub gnu_unique: bool,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// True for a 64-bit little-endian ELF file (the only kind inspected in depth).
fn is_elf64_le(b: &[u8]) -> bool {
    b.len() >= 64 && b.starts_with(b"\x7fELF") && b[4] == 2 && b[5] == 1
}

/// Checks that the file holds everything its headers describe: the program header table, every
/// segment's file bytes and the section header table. The error says how much is missing.
pub fn check_complete(b: &[u8]) -> Result<(), String> {
    if !b.starts_with(b"\x7fELF") || b.len() < 6 || b[4] != 2 || b[5] != 1 {
        return Ok(());
    }
    let len = b.len() as u64;
    let short = |need: u64, what: &str| {
        Err(format!("truncated: {what} ends at byte {need}, but the file has only {len} bytes"))
    };
    if len < 64 {
        return short(64, "the ELF header");
    }
    let field = |v: Option<u64>| v.unwrap_or(0);
    let phoff = field(u64_at(b, 0x20));
    let shoff = field(u64_at(b, 0x28));
    let phentsize = u64::from(u16_at(b, 0x36).unwrap_or(0));
    let phnum = u64::from(u16_at(b, 0x38).unwrap_or(0));
    let shentsize = u64::from(u16_at(b, 0x3a).unwrap_or(0));
    let shnum = u64::from(u16_at(b, 0x3c).unwrap_or(0));
    let ph_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if ph_end > len {
        return short(ph_end, "the program header table");
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let (Some(p_type), Some(offset), Some(filesz)) = (u32_at(b, at), u64_at(b, at + 8), u64_at(b, at + 32)) else {
            return short(ph_end, "the program header table");
        };
        let end = offset.saturating_add(filesz);
        if end > len {
            let what = if p_type == PT_LOAD { "a loadable segment" } else { "a segment" };
            return short(end, what);
        }
    }
    if shoff != 0 {
        let sh_end = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if sh_end > len {
            return short(sh_end, "the section header table");
        }
    }
    Ok(())
}

/// The GNU build id (`NT_GNU_BUILD_ID` in a `PT_NOTE` segment) of the file whose first bytes are
/// `b`, lower-case hex; `None` when there is none within `b`.
pub fn build_id(b: &[u8]) -> Option<String> {
    if !is_elf64_le(b) {
        return None;
    }
    let phoff = u64_at(b, 0x20)? as usize;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    for i in 0..phnum {
        let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
        if u32_at(b, at)? != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(b, at + 8)? as usize, u64_at(b, at + 32)? as usize);
        let notes = b.get(offset..offset.checked_add(size)?)?;
        let mut n = 0;
        while n + 12 <= notes.len() {
            let (namesz, descsz, kind) =
                (u32_at(notes, n)? as usize, u32_at(notes, n + 4)? as usize, u32_at(notes, n + 8)?);
            let name_at = n + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
            if kind == NT_GNU_BUILD_ID && notes.get(name_at..name_at + namesz) == Some(b"GNU\0") && !desc.is_empty() {
                return Some(desc.iter().map(|byte| format!("{byte:02x}")).collect());
            }
            n = desc_at + descsz.next_multiple_of(4);
        }
    }
    None
}

/// The dynamic symbol table (`.dynsym`), or why it could not be read.
pub fn dynamic_symbols(b: &[u8]) -> Result<Vec<DynamicSymbol>, String> {
    if !is_elf64_le(b) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    check_complete(b)?;
    let bad = || "malformed section headers".to_string();
    let shoff = u64_at(b, 0x28).ok_or_else(bad)? as usize;
    let shentsize = usize::from(u16_at(b, 0x3a).ok_or_else(bad)?);
    let shnum = usize::from(u16_at(b, 0x3c).ok_or_else(bad)?);
    // (offset, size, entsize, link) of section `i`.
    let section = |i: usize| -> Option<(usize, usize, usize, usize, u32)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        let sh_type = u32_at(b, at + 4)?;
        let offset = u64_at(b, at + 0x18)? as usize;
        let size = u64_at(b, at + 0x20)? as usize;
        let link = u32_at(b, at + 0x28)? as usize;
        let entsize = u64_at(b, at + 0x38)? as usize;
        Some((offset, size, entsize, link, sh_type))
    };
    let Some((sym_off, sym_size, sym_ent, str_index, _)) =
        (0..shnum).filter_map(section).find(|(.., sh_type)| *sh_type == SHT_DYNSYM)
    else {
        return Ok(Vec::new());
    };
    let (str_off, str_size, ..) = section(str_index).ok_or_else(bad)?;
    let strtab = b.get(str_off..str_off.saturating_add(str_size)).ok_or_else(bad)?;
    let sym_ent = if sym_ent == 0 { 24 } else { sym_ent };
    let mut out = Vec::with_capacity(sym_size / sym_ent);
    for i in 0..sym_size / sym_ent {
        let at = sym_off + i * sym_ent;
        let (Some(name_at), Some(info), Some(shndx)) = (u32_at(b, at), b.get(at + 4), u16_at(b, at + 6)) else {
            return Err(bad());
        };
        let name = strtab.get(name_at as usize..).unwrap_or_default();
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        if name.is_empty() {
            continue;
        }
        out.push(DynamicSymbol {
            name: String::from_utf8_lossy(name).into_owned(),
            defined: shndx != 0,
            gnu_unique: info >> 4 == STB_GNU_UNIQUE,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn a_complete_file_passes_and_a_truncated_one_says_what_is_missing() {
        let bytes = this_binary();
        assert_eq!(check_complete(&bytes), Ok(()));
        let half = &bytes[..bytes.len() / 2];
        let err = check_complete(half).unwrap_err();
        assert!(err.starts_with("truncated: ") && err.contains(&format!("only {} bytes", half.len())), "{err}");
        assert!(check_complete(&bytes[..40]).unwrap_err().contains("the ELF header"));
    }

    #[test]
    fn other_content_is_left_to_the_dynamic_loader() {
        assert_eq!(check_complete(b"plain text"), Ok(()));
        assert!(dynamic_symbols(b"plain text").is_err());
    }

    #[test]
    fn the_build_id_is_read_from_the_notes() {
        let bytes = this_binary();
        let id = build_id(&bytes).expect("rustc links with a GNU build id here");
        assert!(id.len() >= 16 && id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        // Only the first page is needed: the notes follow the program headers.
        assert_eq!(build_id(&bytes[..4096]).as_deref(), Some(id.as_str()));
        assert_eq!(build_id(b"plain text"), None);
        assert_eq!(build_id(&bytes[..64]), None, "no notes within the bytes given");
    }

    #[test]
    fn the_dynamic_symbol_table_lists_imports() {
        let symbols = dynamic_symbols(&this_binary()).unwrap();
        assert!(symbols.iter().any(|s| s.name == "malloc" && !s.defined), "{symbols:?}");
    }
}
