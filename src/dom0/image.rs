//! The arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst): what the dom0
//! kernel module must look like, and where it wants to be placed.

/// Offset of the magic in the 64-byte header.
const MAGIC_OFFSET: usize = 0x38;
pub const ARM64_IMAGE_MAGIC: [u8; 4] = *b"ARM\x64";
pub const HEADER_SIZE: usize = 64;

/// A valid Image header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset from a 2 MiB aligned base at which the image must be placed.
    pub text_offset: u64,
    /// Bytes of memory the image needs from its start (file + BSS and more).
    pub image_size: u64,
    /// Header flags: bit 0 big-endian, bits 1-2 page size, bit 3 placement anywhere.
    pub flags: u64,
}

/// Why a module is not a bootable arm64 Image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    TooSmall {
        len: usize,
    },
    BadMagic {
        found: [u8; 4],
    },
    BigEndian,
    /// The page size flag asks for 16 or 64 KiB pages... which we support; only an unknown
    /// encoding is refused. (Kept for completeness of the flag decoding.)
    BadTextOffset {
        text_offset: u64,
    },
    TruncatedFile {
        len: usize,
        image_size: u64,
    },
}

impl core::fmt::Display for ImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImageError::TooSmall { len } => write!(f, "{len} bytes, smaller than an arm64 Image header (64)"),
            ImageError::BadMagic { found } => {
                write!(f, "no arm64 Image magic at offset 0x38 (found {found:02x?}, want \"ARM\\x64\")")
            }
            ImageError::BigEndian => write!(f, "a big-endian kernel; only little-endian guests are supported"),
            ImageError::BadTextOffset { text_offset } => {
                write!(f, "text_offset {text_offset:#x} is not below 2 MiB / not 4 KiB aligned")
            }
            ImageError::TruncatedFile { len, image_size } => {
                write!(f, "file of {len} bytes is larger than its declared image_size {image_size:#x}")
            }
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl ImageHeader {
    /// Check and decode the header of a module of `data.len()` bytes.
    pub fn parse(data: &[u8]) -> Result<ImageHeader, ImageError> {
        if data.len() < HEADER_SIZE {
            return Err(ImageError::TooSmall { len: data.len() });
        }
        let magic: [u8; 4] = data[MAGIC_OFFSET..MAGIC_OFFSET + 4].try_into().unwrap();
        if magic != ARM64_IMAGE_MAGIC {
            return Err(ImageError::BadMagic { found: magic });
        }
        let (text_offset, mut image_size, flags) = (le64(data, 8), le64(data, 16), le64(data, 24));
        if image_size == 0 {
            // Kernels before 3.17: text_offset is meaningless, the size is the file's.
            return Ok(ImageHeader { text_offset: 0x8_0000, image_size: data.len() as u64, flags: 0 });
        }
        if flags & 1 != 0 {
            return Err(ImageError::BigEndian);
        }
        if text_offset >= 2 << 20 || text_offset % 4096 != 0 {
            return Err(ImageError::BadTextOffset { text_offset });
        }
        if (data.len() as u64) > image_size {
            return Err(ImageError::TruncatedFile { len: data.len(), image_size });
        }
        image_size = image_size.max(data.len() as u64);
        Ok(ImageHeader { text_offset, image_size, flags })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64, len: usize) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; len];
        v[8..16].copy_from_slice(&text_offset.to_le_bytes());
        v[16..24].copy_from_slice(&image_size.to_le_bytes());
        v[24..32].copy_from_slice(&flags.to_le_bytes());
        v[0x38..0x3c].copy_from_slice(b"ARM\x64");
        v
    }

    #[test]
    fn accepts_a_linux_style_header() {
        let h = ImageHeader::parse(&header(0, 0x3_0000, 0b1010, 0x2_0000)).unwrap();
        assert_eq!(h, ImageHeader { text_offset: 0, image_size: 0x3_0000, flags: 0b1010 });
        let old = ImageHeader::parse(&header(0x8_0000, 0, 0, 4096)).unwrap();
        assert_eq!((old.text_offset, old.image_size), (0x8_0000, 4096));
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert_eq!(ImageHeader::parse(&[0; 10]), Err(ImageError::TooSmall { len: 10 }));
        let mut elf = header(0, 4096, 0, 4096);
        elf[0x38..0x3c].copy_from_slice(b"\x7fELF");
        assert!(matches!(ImageHeader::parse(&elf), Err(ImageError::BadMagic { .. })));
        assert_eq!(ImageHeader::parse(&header(0, 4096, 1, 4096)), Err(ImageError::BigEndian));
        assert!(matches!(ImageHeader::parse(&header(3 << 20, 4096, 0, 4096)), Err(ImageError::BadTextOffset { .. })));
        assert!(matches!(ImageHeader::parse(&header(0, 100, 0, 4096)), Err(ImageError::TruncatedFile { .. })));
        // the message is readable
        let e = ImageHeader::parse(&elf).unwrap_err();
        assert!(std::format!("{e}").contains("no arm64 Image magic"));
    }
}
