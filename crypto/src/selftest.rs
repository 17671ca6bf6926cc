//! Built-in known-answer tests: published standard examples and real-card traces, run by
//! `ykt lab selftest` and at the start of anything that wants proof the algorithms are intact.

use crate::block::BlockCipher;
use crate::epurse::{Load, Purchase};
use crate::kcv::Kcv;
use crate::key::{SymmetricAlgorithm, SymmetricKey};
use crate::mac::{PbocMac, cmac};
use crate::p256::{P256PrivateKey, P256PublicKey, sha256};
use crate::profile::Profile;
use crate::secure_messaging::{external_auth_cryptogram, line_mac, write_key_command};
use crate::signature::Signature;
use crate::sm2::{Sm2PrivateKey, sm3};

/// The outcome of one known-answer test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Short name of the test.
    pub name: &'static str,
    /// Where the expected value comes from.
    pub source: &'static str,
    /// `None` when it passed; otherwise what differed.
    pub failure: Option<String>,
}

impl Outcome {
    /// Whether the test passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

fn h(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex literal"))
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn key(alg: SymmetricAlgorithm, hex: &str) -> SymmetricKey {
    SymmetricKey::new(alg, &h(hex)).expect("literal key")
}

fn arr<const N: usize>(hex: &str) -> [u8; N] {
    h(hex).try_into().expect("literal length")
}

/// Compares named values; the first difference becomes the failure text.
fn compare(pairs: &[(&str, Vec<u8>, &str)]) -> Option<String> {
    pairs.iter().find_map(|(what, got, want)| {
        (to_hex(got) != *want).then(|| format!("{what}: got {}, want {want}", to_hex(got)))
    })
}

fn encrypt(key: &SymmetricKey, block: &str) -> Vec<u8> {
    let mut b = h(block);
    BlockCipher::new(key)
        .encrypt_block(&mut b)
        .expect("one block");
    b
}

type Check = fn() -> Option<String>;

const CHECKS: &[(&str, &str, Check)] = &[
    ("sm4-encrypt", "GB/T 32907-2016 example 1", || {
        let k = key(SymmetricAlgorithm::Sm4, "0123456789ABCDEFFEDCBA9876543210");
        compare(&[(
            "ciphertext",
            encrypt(&k, "0123456789ABCDEFFEDCBA9876543210"),
            "681EDF34D206965E86B3E94F536E4246",
        )])
    }),
    (
        "sm4-1e6",
        "GB/T 32907-2016 example 2 (1,000,000 encryptions)",
        || {
            let k = key(SymmetricAlgorithm::Sm4, "0123456789ABCDEFFEDCBA9876543210");
            let cipher = crate::sm4::Sm4::new(k.expose_secret().try_into().expect("16"));
            let mut block: [u8; 16] = arr("0123456789ABCDEFFEDCBA9876543210");
            for _ in 0..1_000_000 {
                cipher.encrypt_block(&mut block);
            }
            compare(&[(
                "ciphertext",
                block.to_vec(),
                "595298C7C6FD271F0402F804C33D3F66",
            )])
        },
    ),
    ("des-encrypt", "FIPS 46 worked example", || {
        let k = key(SymmetricAlgorithm::Des, "133457799BBCDFF1");
        compare(&[(
            "ciphertext",
            encrypt(&k, "0123456789ABCDEF"),
            "85E813540F0AB405",
        )])
    }),
    ("aes128-encrypt", "FIPS 197 appendix C.1", || {
        let k = key(
            SymmetricAlgorithm::Aes128,
            "000102030405060708090A0B0C0D0E0F",
        );
        compare(&[(
            "ciphertext",
            encrypt(&k, "00112233445566778899AABBCCDDEEFF"),
            "69C4E0D86A7B0430D8CDB78070B4C55A",
        )])
    }),
    ("aes-cmac", "RFC 4493 example 2", || {
        let k = key(
            SymmetricAlgorithm::Aes128,
            "2B7E151628AED2A6ABF7158809CF4F3C",
        );
        compare(&[(
            "tag",
            cmac(&k, &h("6BC1BEE22E409F96E93D7E117393172A")),
            "070A16B46B4D4144F79BDD9DD04A287C",
        )])
    }),
    (
        "retail-mac",
        "ISO 9797-1 alg. 3 worked example (pboc_mac_algorithms.json)",
        || {
            let k = key(
                SymmetricAlgorithm::TripleDes,
                "5775204D69616F6A756E404726444311",
            );
            let data = h(concat!(
                "4348454E48414F2D50437C424645424642464630303033303643337E394250305044",
                "32434E3730313633363649303034337C32303234303131317C32303235303130317C",
                "383139317C30"
            ));
            let mac = PbocMac::new(&k).expect("3DES").compute(&data);
            compare(&[("mac", mac.as_bytes().to_vec(), "4089819D3D991CC7")])
        },
    ),
    (
        "line-protection-mac",
        "klks/fmcos-python test_mac.py",
        || {
            let k = key(
                SymmetricAlgorithm::TripleDes,
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
            );
            let mac = line_mac(
                &k,
                &h("44A47DEB"),
                &h("04D600001411223344556677889900AABBCCDDEEFF"),
            );
            compare(&[(
                "mac",
                mac.map(|m| m.to_vec()).unwrap_or_default(),
                "F2F62231",
            )])
        },
    ),
    (
        "diversify-3des",
        "PBOC 1-level diversification (B-psam)",
        || {
            let k = key(
                SymmetricAlgorithm::TripleDes,
                "00112233445566778899AABBCCDDEEFF",
            );
            let dk = Profile::PbocDes.diversify(&k, &arr("1122334455667788"));
            compare(&[(
                "key",
                dk.map(|k| k.expose_secret().to_vec()).unwrap_or_default(),
                "496BD7A3513644533100B54E71196528",
            )])
        },
    ),
    ("kcv-3des", "zeros encryption of the FIPS 46 key", || {
        let k = key(SymmetricAlgorithm::Des, "133457799BBCDFF1");
        let zeros = encrypt(&k, "0000000000000000");
        compare(&[("kcv", Kcv::of(&k).value().to_vec(), &to_hex(&zeros[..3]))])
    }),
    (
        "load",
        "real-card trace deng214 (pboc_epurse_load.json)",
        || {
            let dlk = key(
                SymmetricAlgorithm::TripleDes,
                "00112233445566778899AABBCCDDEEFF",
            );
            let load = Load {
                card_random: arr("C903814D"),
                online_seq: 0,
                old_balance: 0,
                amount: 0x2000,
                transaction_type: 0x02,
                terminal_id: arr("001122334455"),
                date: arr("20161216"),
                time: arr("105800"),
            };
            let run = || -> crate::Result<Vec<(&str, Vec<u8>, &str)>> {
                let ses = load.session_key(Profile::PbocDes, &dlk)?;
                Ok(vec![
                    (
                        "session key",
                        ses.expose_secret().to_vec(),
                        "11FDF264E8AEEFA3",
                    ),
                    ("MAC1", load.mac1(&ses)?.to_vec(), "03976C22"),
                    ("MAC2", load.mac2(&ses)?.to_vec(), "8AFA5718"),
                    (
                        "TAC",
                        load.tac(Profile::PbocDes, &dlk)?.to_vec(),
                        "FA00066D",
                    ),
                ])
            };
            run().map_or_else(|e| Some(e.to_string()), |pairs| compare(&pairs))
        },
    ),
    (
        "purchase",
        "real-card trace deng214 (pboc_epurse_purchase.json)",
        || {
            let dpk = key(
                SymmetricAlgorithm::TripleDes,
                "00112233445566778899AABBCCDDEEFF",
            );
            let purchase = Purchase {
                card_random: arr("584633C9"),
                offline_seq: 0,
                amount: 1,
                transaction_type: 0x06,
                terminal_id: arr("001122334455"),
                terminal_seq: 0,
                date: arr("20161216"),
                time: arr("134600"),
            };
            let run = || -> crate::Result<Vec<(&str, Vec<u8>, &str)>> {
                let ses = purchase.session_key(Profile::PbocDes, &dpk)?;
                Ok(vec![
                    (
                        "session key",
                        ses.expose_secret().to_vec(),
                        "C08346DF9F1D457A",
                    ),
                    ("MAC1", purchase.mac1(&ses)?.to_vec(), "D45737C5"),
                    ("MAC2", purchase.mac2(&ses)?.to_vec(), "66B54A6B"),
                    (
                        "TAC",
                        purchase.tac(Profile::PbocDes, &dpk)?.to_vec(),
                        "8AF270DC",
                    ),
                ])
            };
            run().map_or_else(|e| Some(e.to_string()), |pairs| compare(&pairs))
        },
    ),
    (
        "write-key-des",
        "FMCOS 84D4 trace (pboc_secure_messaging.json)",
        || {
            let k = key(SymmetricAlgorithm::Des, "FFFFFFFFFFFFFFFF");
            let apdu = write_key_command(
                &k,
                &h("4C45BAB9"),
                0x01,
                0x02,
                &h("F9F0F0AAFF1122334455667788"),
            );
            compare(&[(
                "apdu",
                apdu.unwrap_or_default(),
                "84D40102147C87BC23140021B3AFEA67E6359DDCFED7C943F6",
            )])
        },
    ),
    (
        "write-key-psam-3des",
        "PSAM 84D4 trace (pboc_secure_messaging.json)",
        || {
            let k = key(
                SymmetricAlgorithm::TripleDes,
                "00112233445566778899AABBCCDDEEFF",
            );
            let apdu = write_key_command(
                &k,
                &h("5D72B3FD"),
                0x00,
                0x00,
                &h("22000000112233445566778899AABBCCDDEEFF"),
            );
            compare(&[(
                "apdu",
                apdu.unwrap_or_default(),
                "84D400001CDCC0BB5793ABFCA2CA8C1624822F6E01A86A0B5CBED191DD8A9D4ADB",
            )])
        },
    ),
    (
        "external-auth",
        "FMCOS issuance trace (pboc_secure_messaging.json)",
        || {
            let k = key(SymmetricAlgorithm::Des, "FFFFFFFFFFFFFFFF");
            let c = external_auth_cryptogram(&k, &h("53FD1F262EC4E6E2"));
            compare(&[("cryptogram", c.unwrap_or_default(), "A0DBBFC1192FF24A")])
        },
    ),
    ("sm3", "GB/T 32905-2016 example 1", || {
        compare(&[(
            "digest",
            sm3(b"abc").to_vec(),
            "66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0",
        )])
    }),
    (
        "sm2-sign",
        "GM/T 0003.5 / GB/T 32918 example, recommended curve",
        || {
            let key = match Sm2PrivateKey::from_bytes(&h(
                "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
            )) {
                Ok(key) => key,
                Err(e) => return Some(e.to_string()),
            };
            let public = key.public_key();
            let e = match public.digest(crate::sm2::DEFAULT_ID, b"message digest") {
                Ok(e) => e,
                Err(err) => return Some(err.to_string()),
            };
            let k = arr("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21");
            let sig = key
                .sign_digest_with_nonce(&e, &k)
                .unwrap_or(Signature::new([0; 32], [0; 32]));
            let verified = public.verify_digest(&e, &sig).is_ok();
            compare(&[
                (
                    "public key",
                    public.to_uncompressed().to_vec(),
                    concat!(
                        "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020",
                        "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
                    ),
                ),
                (
                    "e",
                    e.to_vec(),
                    "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640",
                ),
                (
                    "r",
                    sig.r().to_vec(),
                    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3",
                ),
                (
                    "s",
                    sig.s().to_vec(),
                    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
                ),
                ("verifies", vec![u8::from(verified)], "01"),
            ])
        },
    ),
    (
        "p256-verify",
        "RFC 6979 appendix A.2.5, SHA-256, message \"sample\"",
        || {
            let public = P256PublicKey::from_sec1(&h(concat!(
                "0460FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6",
                "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
            )));
            let sig = Signature::new(
                arr("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"),
                arr("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
            );
            let private = P256PrivateKey::from_bytes(&h(
                "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
            ));
            match (public, private) {
                (Ok(public), Ok(private)) => {
                    let good = public.verify(b"sample", &sig).is_ok();
                    let digest_good = public.verify_digest(&sha256(b"sample"), &sig).is_ok();
                    let bad = public.verify(b"samplE", &sig).is_err();
                    compare(&[
                        (
                            "derived public key",
                            private.public_key().to_uncompressed().to_vec(),
                            &to_hex(&public.to_uncompressed()),
                        ),
                        ("verifies", vec![u8::from(good && digest_good && bad)], "01"),
                    ])
                }
                _ => Some("key import failed".into()),
            }
        },
    ),
];

/// Runs every known-answer test.
pub fn run() -> Vec<Outcome> {
    CHECKS
        .iter()
        .map(|(name, source, check)| Outcome {
            name,
            source,
            failure: check(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_known_answer_test_passes() {
        let failures: Vec<_> = super::run().into_iter().filter(|o| !o.passed()).collect();
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
