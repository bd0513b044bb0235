//! The built-in sandbox program and its image's root file system, checked without an
//! engine: the ELF headers, the program really blocking on this host, and the tar layout.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use super::*;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

#[test]
fn engine_architectures_map_to_programs_and_others_are_refused() {
    assert_eq!(Arch::from_engine("amd64"), Some(Arch::X86_64));
    assert_eq!(Arch::from_engine("arm64"), Some(Arch::Aarch64));
    assert_eq!(Arch::from_engine("aarch64"), Some(Arch::Aarch64));
    assert_eq!(Arch::from_engine("s390x"), None);
    assert_eq!(Arch::from_engine("arm"), None);
}

#[test]
fn headers_describe_one_executable_segment_covering_the_file() {
    for (arch, machine) in [(Arch::X86_64, 62), (Arch::Aarch64, 183)] {
        let elf = pause_elf(arch);
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!((elf[4], elf[5]), (2, 1), "64-bit little endian");
        assert_eq!(u16_at(&elf, 16), 2, "executable");
        assert_eq!(u16_at(&elf, 18), machine);
        assert_eq!(
            u64_at(&elf, 24),
            BASE + 120,
            "entry right after the headers"
        );
        assert_eq!(u16_at(&elf, 56), 1, "one program header");
        assert_eq!(u64_at(&elf, 64 + 32), elf.len() as u64, "p_filesz");
        assert!(elf.len() < 200, "{} bytes", elf.len());
    }
    // aarch64 instructions are whole 32-bit words.
    assert_eq!((pause_elf(Arch::Aarch64).len() - 120) % 4, 0);
}

/// The program for this host, run as a process: it must still be running after 200 ms
/// (it blocks instead of exiting or crashing), then it is killed.
#[test]
fn the_program_for_this_host_blocks_until_killed() {
    let Some(arch) = Arch::from_engine(std::env::consts::ARCH) else {
        eprintln!(
            "SKIPPED: no built-in sandbox program for {}",
            std::env::consts::ARCH
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pause");
    std::fs::write(&path, pause_elf(arch)).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut child = std::process::Command::new(&path)
        .spawn()
        .expect("the ELF must be executable");
    std::thread::sleep(Duration::from_millis(200));
    let early_exit = child.try_wait().expect("try_wait");
    let _ = child.kill();
    let status = child.wait().expect("wait");
    assert_eq!(early_exit, None, "it exited on its own: {status}");
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(9), "{status}");
}

#[test]
fn the_tar_holds_one_executable_file_with_a_valid_header() {
    let content = pause_elf(Arch::X86_64);
    let tar = single_file_tar("pause", &content);
    assert_eq!(tar.len() % 512, 0);
    assert_eq!(
        tar.len(),
        512 + 512 + 1024,
        "header, one data block, end blocks"
    );
    let header = &tar[..512];
    assert_eq!(&header[..6], b"pause\0");
    assert_eq!(&header[100..107], b"0000755");
    let size = std::str::from_utf8(&header[124..135]).expect("octal");
    assert_eq!(usize::from_str_radix(size, 8).ok(), Some(content.len()));
    assert_eq!(&header[257..263], b"ustar\0");
    let stored = std::str::from_utf8(&header[148..154]).expect("octal");
    let mut blank = header.to_vec();
    blank[148..156].fill(b' ');
    let sum: u32 = blank.iter().map(|b| u32::from(*b)).sum();
    assert_eq!(u32::from_str_radix(stored, 8).ok(), Some(sum));
    assert_eq!(&tar[512..512 + content.len()], content.as_slice());
    assert!(tar[512 + content.len()..].iter().all(|b| *b == 0));
}
