//! Hash functions: MD5, SHA1 and the SHA-2 family of a text's UTF-8 bytes, as lowercase
//! hexadecimal (RustCrypto's digests).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::{check, integer, text, ScalarFunction, INTEGER, STRING};
use crate::types::SqlType;
use crate::value::Value;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn digest<D: Digest>(data: &[u8]) -> String {
    hex(&D::digest(data))
}

fn hash_function(name: &str, bits: usize, description: &str, call: &str, result: &str, hash: fn(&[u8]) -> String) -> ScalarFunction {
    ScalarFunction::new(
        name,
        &format!("{name}(s STRING) -> STRING"),
        |args| {
            check(args, 1..=1, &[STRING])?;
            Ok(SqlType::String)
        },
        move |args, _| Ok(Value::text(hash(text(&args[0])?.as_bytes()))),
    )
    .describe(&format!("{description} ({} hexadecimal digits).", bits / 4))
    .example(call, result)
}

/// The hash functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        hash_function(
            "MD5",
            128,
            "The MD5 digest of the text's UTF-8 bytes",
            "MD5('tethys')",
            "308711e86d1ff48b1475fe8528545bb7",
            digest::<Md5>,
        ),
        hash_function(
            "SHA1",
            160,
            "The SHA-1 digest of the text's UTF-8 bytes",
            "SHA1('tethys')",
            "6a64bdaee2af1b1d79e0612801ebacfcb752bb33",
            digest::<Sha1>,
        ),
        hash_function(
            "SHA224",
            224,
            "The SHA-224 digest of the text's UTF-8 bytes",
            "SHA224('')",
            "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f",
            digest::<Sha224>,
        ),
        hash_function(
            "SHA256",
            256,
            "The SHA-256 digest of the text's UTF-8 bytes",
            "SHA256('abc')",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            digest::<Sha256>,
        ),
        hash_function(
            "SHA384",
            384,
            "The SHA-384 digest of the text's UTF-8 bytes",
            "SHA384('')",
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
            digest::<Sha384>,
        ),
        hash_function(
            "SHA512",
            512,
            "The SHA-512 digest of the text's UTF-8 bytes",
            "SHA512('')",
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            digest::<Sha512>,
        ),
        ScalarFunction::new(
            "SHA2",
            "SHA2(s STRING, bits INT) -> STRING",
            |args| {
                check(args, 2..=2, &[STRING, INTEGER])?;
                Ok(SqlType::String)
            },
            |args, _| {
                let data = text(&args[0])?.as_bytes();
                Ok(Value::text(match integer(&args[1])? {
                    224 => digest::<Sha224>(data),
                    256 => digest::<Sha256>(data),
                    384 => digest::<Sha384>(data),
                    512 => digest::<Sha512>(data),
                    other => return Err(format!("SHA-2 digests have 224, 256, 384 or 512 bits, not {other}")),
                }))
            },
        )
        .describe("The SHA-2 digest of the text's UTF-8 bytes with the given number of bits (224, 256, 384 or 512), in hexadecimal.")
        .example("SHA2('abc', 224)", "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_published_test_vectors() {
        // RFC 1321 and FIPS 180 test vectors.
        assert_eq!(digest::<Md5>(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(digest::<Md5>(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(digest::<Sha1>(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(digest::<Sha512>(b"abc").len(), 128);
        let call = crate::expr::eval_constant("SHA2('abc', 100)", &crate::function::FunctionRegistry::default());
        assert_eq!(call.unwrap_err(), "SHA2: SHA-2 digests have 224, 256, 384 or 512 bits, not 100");
    }
}
