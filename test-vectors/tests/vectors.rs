//! Checks ykt-crypto against every vector in `data/`: one generated test per file, each
//! reporting every vector and field that failed.

use ykt_crypto::secure_messaging::{encrypt_data, external_auth_cryptogram, write_key_command};
use ykt_crypto::sm2::{Sm2PrivateKey, Sm2PublicKey, ZaCurve, sm3, za_with_curve};
use ykt_crypto::{
    BlockCipher, Load, PbocMac, Profile, Purchase, Signature, SymmetricAlgorithm, SymmetricKey,
};
use ykt_test_vectors::{Vector, VectorError, VectorFile};

include!(concat!(env!("OUT_DIR"), "/vector_file_tests.rs"));

/// Runs the checker for `name` over all its vectors and fails listing every mismatch.
fn check_file(name: &str) {
    let file = VectorFile::load(name).unwrap_or_else(|e| panic!("{e}"));
    let checker: Checker = match name {
        "sm4_gbt32907.json" => check_sm4,
        "sm3_gbt32905.json" => check_sm3,
        "sm2_gbt32918_sign.json" => check_sm2_sign,
        "pboc_mac_algorithms.json" => check_mac,
        "pboc_key_diversification.json" => check_diversification,
        "pboc_epurse_load.json" => check_load,
        "pboc_epurse_purchase.json" => check_purchase,
        "pboc_secure_messaging.json" => check_secure_messaging,
        other => panic!("no checker for vector file {other}: add one to tests/vectors.rs"),
    };
    let mut report = Report::default();
    for vector in file.vectors() {
        report.vector = vector.id().to_string();
        report.checked_vectors += 1;
        if let Err(e) = checker(&vector, &mut report) {
            report.failures.push(format!("{}: {e}", vector.id()));
        }
    }
    assert!(report.checked_vectors > 0, "{name}: no vectors");
    assert!(
        report.failures.is_empty(),
        "{name}: {} failure(s):\n  {}",
        report.failures.len(),
        report.failures.join("\n  ")
    );
    assert!(report.checked_fields > 0, "{name}: nothing compared");
}

/// Mismatches found so far, labelled by vector id.
#[derive(Default)]
struct Report {
    vector: String,
    checked_vectors: usize,
    checked_fields: usize,
    failures: Vec<String>,
}

impl Report {
    /// Compares a computed value with the vector's field.
    fn expect(&mut self, v: &Vector<'_>, field: &str, got: &[u8]) -> Result<(), VectorError> {
        let want = v.hex(field)?;
        self.expect_bytes(field, got, &want);
        Ok(())
    }

    fn expect_bytes(&mut self, what: &str, got: &[u8], want: &[u8]) {
        self.checked_fields += 1;
        if got != want {
            self.failures.push(format!(
                "{}: {what}: got {}, want {}",
                self.vector,
                hex::encode_upper(got),
                hex::encode_upper(want)
            ));
        }
    }

    fn expect_true(&mut self, what: &str, ok: bool) {
        self.checked_fields += 1;
        if !ok {
            self.failures.push(format!("{}: {what}", self.vector));
        }
    }
}

type Checked = Result<(), Box<dyn std::error::Error>>;

/// Checks one vector of a file, recording mismatches in the report.
type Checker = fn(&Vector<'_>, &mut Report) -> Checked;

fn key(alg: SymmetricAlgorithm, bytes: &[u8]) -> Result<SymmetricKey, ykt_crypto::CryptoError> {
    SymmetricKey::new(alg, bytes)
}

/// DES for 8-byte keys, two-key 3DES for 16-byte keys.
fn des_key(bytes: &[u8]) -> Result<SymmetricKey, ykt_crypto::CryptoError> {
    let alg = if bytes.len() == 8 {
        SymmetricAlgorithm::Des
    } else {
        SymmetricAlgorithm::TripleDes
    };
    key(alg, bytes)
}

fn check_sm4(v: &Vector<'_>, r: &mut Report) -> Checked {
    let cipher = BlockCipher::new(&key(SymmetricAlgorithm::Sm4, &v.hex("key")?)?);
    let mut block = v.hex("plaintext")?;
    let iterations = if v.has("iterations") {
        v.u64("iterations")?
    } else {
        1
    };
    for _ in 0..iterations {
        cipher.encrypt_block(&mut block)?;
    }
    r.expect(v, "ciphertext", &block)?;
    for _ in 0..iterations {
        cipher.decrypt_block(&mut block)?;
    }
    r.expect(v, "plaintext", &block)?;
    Ok(())
}

fn check_sm3(v: &Vector<'_>, r: &mut Report) -> Checked {
    r.expect_bytes(
        "message_hex",
        &v.hex("message_hex")?,
        v.str("message_ascii")?.as_bytes(),
    );
    r.expect(v, "digest", &sm3(&v.hex("message_hex")?))?;
    Ok(())
}

/// On the recommended curve every published value is recomputed (public key, ZA, e, the
/// nonce point's x1) and the published (r, s) must verify while a tampered one must not; the
/// exact (r, s) from the published nonce is the built-in self-test `sm2-sign`. On the GB/T
/// 32918.2 test curve, which ykt does not implement, ZA and e are recomputed.
fn check_sm2_sign(v: &Vector<'_>, r: &mut Report) -> Checked {
    let id = v.str("user_id_ascii")?.as_bytes();
    let message = v.str("message_ascii")?.as_bytes();
    r.expect_bytes(
        "entla",
        &[(id.len() * 8) as u8],
        &[v.u64("entla_bits")? as u8],
    );
    let (a, b) = (curve_hex(v, "a")?, curve_hex(v, "b")?);
    let (gx, gy) = (curve_hex(v, "gx")?, curve_hex(v, "gy")?);
    let curve = ZaCurve {
        a: &a,
        b: &b,
        gx: &gx,
        gy: &gy,
    };
    let za = za_with_curve(id, &curve, &v.hex("pub_x")?, &v.hex("pub_y")?)?;
    r.expect(v, "za", &za)?;
    r.expect(v, "e", &sm3(&[za.as_slice(), message].concat()))?;
    if v.id() != "sm2-sign-recommended-curve" {
        return Ok(());
    }
    let private = Sm2PrivateKey::from_bytes(&v.hex("private_key_d")?)?;
    let public = private.public_key();
    r.expect_bytes(
        "public key",
        &public.to_uncompressed(),
        &[&[4u8][..], &v.hex("pub_x")?, &v.hex("pub_y")?].concat(),
    );
    r.expect(v, "za", &public.za(id)?)?;
    let nonce_point = Sm2PrivateKey::from_bytes(&v.hex("k")?)?
        .public_key()
        .to_uncompressed();
    r.expect(v, "x1", &nonce_point[1..33])?;
    let sig = Signature::new(v.hex_array("r")?, v.hex_array("s")?);
    let published = Sm2PublicKey::from_sec1(&public.to_uncompressed())?;
    r.expect_true(
        "published signature verifies",
        published.verify(id, message, &sig).is_ok(),
    );
    let mut s = *sig.s();
    s[31] ^= 1;
    r.expect_true(
        "tampered signature is refused",
        published
            .verify(id, message, &Signature::new(*sig.r(), s))
            .is_err(),
    );
    Ok(())
}

fn check_mac(v: &Vector<'_>, r: &mut Report) -> Checked {
    let mac = PbocMac::new(&des_key(&v.hex("key")?)?)?;
    let result = mac.compute_with_iv(&v.hex("iv")?, &v.hex("data")?)?;
    if v.has("mac8") {
        r.expect(v, "mac8", result.as_bytes())?;
        let full_3des = v.hex("negative_check_full_3des_cbc")?;
        r.expect_true(
            "differs from full 3DES-CBC",
            result.as_bytes() != full_3des.as_slice(),
        );
    } else {
        r.expect(v, "mac4", &result.first4())?;
    }
    Ok(())
}

fn check_diversification(v: &Vector<'_>, r: &mut Report) -> Checked {
    let master = key(SymmetricAlgorithm::TripleDes, &v.hex("master_key")?)?;
    let profile = Profile::PbocDes;
    let factor = |hex: &str| -> Result<[u8; 8], Box<dyn std::error::Error>> {
        Ok(hex::decode(hex)?
            .try_into()
            .map_err(|_| "factor is not 8 bytes")?)
    };
    if v.has("factor") {
        let f: [u8; 8] = v.hex_array("factor")?;
        r.expect(v, "factor_inverted", &f.map(|b| !b))?;
        let dk = profile.diversify(&master, &f)?;
        r.expect(v, "derived_key", dk.expose_secret())?;
        r.expect(v, "left", &dk.expose_secret()[..8])?;
        r.expect(v, "right", &dk.expose_secret()[8..])?;
    } else if v.has("factors_top_down") {
        let factors = v
            .str_list("factors_top_down")?
            .into_iter()
            .map(factor)
            .collect::<Result<Vec<_>, _>>()?;
        r.expect(
            v,
            "card_key",
            profile.diversify_path(&master, &factors)?.expose_secret(),
        )?;
    } else {
        let level1 = v.hex_array("factor_level1_issuer_or_city")?;
        let level2 = v.hex_array("factor_level2_card_asn")?;
        let intermediate = profile.diversify(&master, &level1)?;
        r.expect(v, "intermediate_key", intermediate.expose_secret())?;
        let card = profile.diversify_path(&master, &[level1, level2])?;
        r.expect(v, "card_key", card.expose_secret())?;
    }
    Ok(())
}

/// A BCD date `YYYYMMDD` and time `hhmmss`.
type DateTime = ([u8; 4], [u8; 3]);

/// Date and time fields, empty in traces that did not record them.
fn date_time(v: &Vector<'_>, date: &str, time: &str) -> Result<Option<DateTime>, VectorError> {
    if v.str(date)?.is_empty() {
        return Ok(None);
    }
    Ok(Some((v.hex_array(date)?, v.hex_array(time)?)))
}

fn check_load(v: &Vector<'_>, r: &mut Report) -> Checked {
    let dlk = des_key(&v.hex("load_key_DLK")?)?;
    let recorded = date_time(v, "host_date", "host_time")?;
    let (date, time) = recorded.unwrap_or_default();
    let load = Load {
        card_random: v.hex_array("card_random")?,
        online_seq: v.hex_u32("online_seq_before")? as u16,
        old_balance: v.hex_u32("old_balance")?,
        amount: v.hex_u32("amount")?,
        transaction_type: v.hex_array::<1>("trans_type")?[0],
        terminal_id: v.hex_array("terminal_id")?,
        date,
        time,
    };
    let session = load.session_key(Profile::PbocDes, &dlk)?;
    r.expect(v, "session_key", session.expose_secret())?;
    r.expect(v, "mac1", &load.mac1(&session)?)?;
    let mac2_over_input = PbocMac::new(&session)?
        .compute(&v.hex("mac2_input")?)
        .first4();
    r.expect(v, "mac2", &mac2_over_input)?;
    if recorded.is_some() {
        r.expect(v, "mac2", &load.mac2(&session)?)?;
    }
    if v.has("tac") {
        let dtk = des_key(&v.hex("tac_key_DTK")?)?;
        r.expect(
            v,
            "tac_session_key",
            Profile::PbocDes.tac_key(&dtk)?.expose_secret(),
        )?;
        r.expect(v, "new_balance", &load.new_balance()?.to_be_bytes())?;
        r.expect(v, "tac_input", &load.tac_input()?)?;
        r.expect(v, "tac", &load.tac(Profile::PbocDes, &dtk)?)?;
        let tac = v.hex("tac")?;
        r.expect_true(
            "TAC verifies",
            load.verify_tac(Profile::PbocDes, &dtk, &tac).is_ok(),
        );
    }
    Ok(())
}

fn check_purchase(v: &Vector<'_>, r: &mut Report) -> Checked {
    let dpk = des_key(&v.hex("purchase_key_DPK")?)?;
    let purchase = Purchase {
        card_random: v.hex_array("card_random")?,
        offline_seq: v.hex_u32("offline_seq")? as u16,
        amount: v.hex_u32("amount")?,
        transaction_type: v.hex_array::<1>("trans_type")?[0],
        terminal_id: v.hex_array("terminal_id")?,
        terminal_seq: v.hex_u32("terminal_seq")?,
        date: v.hex_array("terminal_date")?,
        time: v.hex_array("terminal_time")?,
    };
    let session = purchase.session_key(Profile::PbocDes, &dpk)?;
    r.expect(v, "session_key", session.expose_secret())?;
    r.expect(v, "mac1", &purchase.mac1(&session)?)?;
    r.expect(v, "mac2", &purchase.mac2(&session)?)?;
    let dtk = des_key(&v.hex("tac_key_DTK")?)?;
    r.expect(
        v,
        "tac_session_key",
        Profile::PbocDes.tac_key(&dtk)?.expose_secret(),
    )?;
    r.expect(v, "tac_input", &purchase.tac_input())?;
    r.expect(v, "tac", &purchase.tac(Profile::PbocDes, &dtk)?)?;
    let mut forged = v.hex("tac")?;
    forged[0] ^= 0x01;
    r.expect_true(
        "forged TAC refused",
        purchase
            .verify_tac(Profile::PbocDes, &dtk, &forged)
            .is_err(),
    );
    Ok(())
}

fn check_secure_messaging(v: &Vector<'_>, r: &mut Report) -> Checked {
    match v.id() {
        "fmcos-84D4-des-1" => {
            let k = des_key(&v.hex("key_8byte_master_39")?)?;
            let record = v.hex("plaintext_key_record")?;
            r.expect(v, "ciphertext", &encrypt_data(&k, &record)?)?;
            let apdu = write_key_command(&k, &v.hex("challenge4")?, 0x01, 0x02, &record)?;
            r.expect(v, "apdu", &apdu)?;
            r.expect(v, "mac4", &apdu[apdu.len() - 4..])?;
        }
        "psam-84D4-3des" => {
            let k = des_key(&v.hex("master_key_16")?)?;
            let plain = v.hex("plaintext")?;
            r.expect(v, "ciphertext", &encrypt_data(&k, &plain)?)?;
            let challenge = &v.hex("iv")?[..4];
            let apdu = write_key_command(&k, challenge, 0x00, 0x00, &plain)?;
            r.expect(v, "apdu", &apdu)?;
            let full_3des = v.hex("negative_check_full_3des_mac4")?;
            r.expect_true(
                "retail MAC, not full 3DES",
                apdu[apdu.len() - 4..] != full_3des[..],
            );
        }
        "external-auth-des-ff" => {
            let k = des_key(&v.hex("key")?)?;
            let cryptogram = external_auth_cryptogram(&k, &v.hex("challenge8")?)?;
            r.expect(v, "cryptogram", &cryptogram)?;
            r.expect(
                v,
                "apdu",
                &[&[0x00, 0x82, 0x00, 0x00, 0x08][..], &cryptogram].concat(),
            )?;
        }
        other => return Err(format!("no check for secure-messaging vector {other}").into()),
    }
    Ok(())
}

/// A hex field of the vector's nested `curve` object.
fn curve_hex(v: &Vector<'_>, field: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    Ok(hex::decode(v.nested_str("curve", field)?)?)
}
