//! The built-in sandbox program: a static ELF executable that blocks forever, generated
//! as bytes so that no image has to be pulled to hold a workflow's network namespace.
//!
//! The file is one ELF header, one loadable program header and a few instructions that
//! wait for a signal in a loop (`pause` on x86_64, `ppoll(NULL, 0, NULL, NULL)` on
//! aarch64, which has no `pause`). It needs no libc, no loader and no writable memory.
//! As a container's pid 1 it ignores SIGTERM (the kernel drops signals pid 1 has no
//! handler for), so the sandbox is removed with SIGKILL.

/// A CPU architecture the built-in sandbox program exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (`amd64` in Docker's words).
    X86_64,
    /// aarch64 (`arm64`).
    Aarch64,
}

impl Arch {
    /// The architecture an engine reports (`docker version`'s `Arch`), if supported.
    pub fn from_engine(arch: &str) -> Option<Self> {
        match arch.trim().to_ascii_lowercase().as_str() {
            "amd64" | "x86_64" => Some(Self::X86_64),
            "arm64" | "aarch64" | "arm64/v8" => Some(Self::Aarch64),
            _ => None,
        }
    }

    /// ELF `e_machine`.
    fn machine(self) -> u16 {
        match self {
            Self::X86_64 => 62,
            Self::Aarch64 => 183,
        }
    }

    /// The wait loop, starting at the entry point.
    fn code(self) -> Vec<u8> {
        match self {
            Self::X86_64 => vec![
                0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (pause)
                0x0f, 0x05, // syscall
                0xeb, 0xf7, // jmp back to the mov (-9 bytes)
            ],
            Self::Aarch64 => [
                0xd280_0000u32, // mov x0, #0   (fds = NULL)
                0xd280_0001,    // mov x1, #0   (nfds = 0)
                0xd280_0002,    // mov x2, #0   (no timeout: wait forever)
                0xd280_0003,    // mov x3, #0   (no signal mask)
                0xd280_0928,    // mov x8, #73  (ppoll)
                0xd400_0001,    // svc #0
                0x17ff_fffa,    // b back to the first mov (-6 instructions)
            ]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect(),
        }
    }
}

/// Where the file is mapped; the usual base of static executables.
const BASE: u64 = 0x40_0000;
/// Size of the ELF64 file header.
const ELF_HEADER: u16 = 64;
/// Size of one ELF64 program header.
const PROGRAM_HEADER: u16 = 56;

/// The complete executable for `arch`.
pub fn pause_elf(arch: Arch) -> Vec<u8> {
    let code = arch.code();
    let code_offset = u64::from(ELF_HEADER + PROGRAM_HEADER);
    let file_size = code_offset + code.len() as u64;
    let mut out = Vec::with_capacity(file_size as usize);
    // e_ident: magic, 64-bit, little endian, ELF version 1, System V ABI, padding.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    out.extend_from_slice(&arch.machine().to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // e_version
    out.extend_from_slice(&(BASE + code_offset).to_le_bytes()); // e_entry
    out.extend_from_slice(&u64::from(ELF_HEADER).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    out.extend_from_slice(&ELF_HEADER.to_le_bytes());
    out.extend_from_slice(&PROGRAM_HEADER.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    out.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    // The one PT_LOAD segment: the whole file, readable and executable.
    out.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    out.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    out.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    out.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    out.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    out.extend_from_slice(&file_size.to_le_bytes()); // p_filesz
    out.extend_from_slice(&file_size.to_le_bytes()); // p_memsz
    out.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    out.extend_from_slice(&code);
    out
}

/// A tar archive (ustar) holding one executable file `name` with `content`: the root
/// file system of the built-in sandbox image.
pub fn single_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    put(&mut header[0..100], name.as_bytes());
    put(&mut header[100..108], b"0000755\0"); // mode
    put(&mut header[108..116], b"0000000\0"); // uid
    put(&mut header[116..124], b"0000000\0"); // gid
    put(
        &mut header[124..136],
        format!("{:011o}\0", content.len()).as_bytes(),
    );
    put(&mut header[136..148], b"00000000000\0"); // mtime: reproducible
    header[156] = b'0'; // regular file
    put(&mut header[257..265], b"ustar\x0000");
    // The checksum is computed with its own field read as spaces.
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    put(&mut header[148..156], format!("{sum:06o}\0 ").as_bytes());
    let padding = (512 - content.len() % 512) % 512;
    let mut out = Vec::with_capacity(512 + content.len() + padding + 1024);
    out.extend_from_slice(&header);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
    // Two zero blocks end the archive.
    out.resize(out.len() + 1024, 0);
    out
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
#[path = "pause_tests.rs"]
mod tests;
